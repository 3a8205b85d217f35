// The sending side of an agent: the jobs it runs, one JobRunner thread each.
//
// Thread-safety: all public methods may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "agent/job_runner.h"

namespace zps::agent {

class Sender {
 public:
  Sender(Zfs& zfs, zmq::context_t& ctx, SenderConfig config);
  ~Sender();  // cancels every job and waits for their threads

  // Starts `job`; its runner answers request `start_request` (job_start) itself.
  // Returns false when the job already runs here.
  bool start(const proto::JobStart& job, uint64_t start_request);
  // Returns false when the job does not run here.
  bool cancel(uint64_t job);
  // Stops every job because the agent is stopping; they end as failed.
  void stop_all(const std::string& reason);
  // Jobs still running, for heartbeats and hello.
  std::vector<uint64_t> running() const;

 private:
  struct Run {
    std::unique_ptr<JobRunner> runner;
    std::thread thread;
  };
  void reap();  // under mu_

  Zfs& zfs_;
  zmq::context_t& ctx_;
  SenderConfig config_;
  mutable std::mutex mu_;
  std::map<uint64_t, Run> runs_;
};

}  // namespace zps::agent
