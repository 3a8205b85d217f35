#include "agent/sender.h"

namespace zps::agent {

Sender::Sender(Zfs& zfs, zmq::context_t& ctx, SenderConfig config)
    : zfs_(zfs), ctx_(ctx), config_(std::move(config)) {}

Sender::~Sender() {
  stop_all("the sending agent stopped");
  std::map<uint64_t, Run> runs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    runs.swap(runs_);
  }
  for (auto& [id, run] : runs) {
    if (run.thread.joinable()) run.thread.join();
  }
}

bool Sender::start(const proto::JobStart& job, uint64_t start_request) {
  std::lock_guard<std::mutex> lock(mu_);
  reap();
  if (runs_.count(job.job)) return false;
  Run& run = runs_[job.job];
  run.runner = std::make_unique<JobRunner>(zfs_, ctx_, config_, job, start_request);
  JobRunner* runner = run.runner.get();
  run.thread = std::thread([runner] { runner->run(); });
  return true;
}

bool Sender::cancel(uint64_t job) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = runs_.find(job);
  if (it == runs_.end() || it->second.runner->finished()) return false;
  it->second.runner->cancel(Code::kCancelled, "cancelled by the operator");
  return true;
}

void Sender::stop_all(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, run] : runs_) run.runner->cancel(Code::kUnavailable, reason);
}

std::vector<uint64_t> Sender::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> out;
  for (const auto& [id, run] : runs_) {
    if (!run.runner->finished()) out.push_back(id);
  }
  return out;
}

void Sender::reap() {
  for (auto it = runs_.begin(); it != runs_.end();) {
    if (it->second.runner->finished()) {
      if (it->second.thread.joinable()) it->second.thread.join();
      it = runs_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace zps::agent
