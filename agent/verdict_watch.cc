#include "agent/verdict_watch.h"

#include "agent/bus.h"

namespace zps::agent {

VerdictWatch::VerdictWatch(zmq::context_t& ctx, const std::string& bus_endpoint, uint64_t job,
                           uint64_t session, const std::atomic<bool>& cancel) {
  thread_ = std::thread([this, &ctx, bus_endpoint, job, session, &cancel] {
    BusClient bus(ctx, bus_endpoint);
    auto reply = bus.call(proto::RecvResultRequest{job, session}, kTimeout,
                          [&] { return cancel.load() || abandon_.load(); });
    if (reply.ok()) {
      result_ = reply->as<proto::RecvResultReply>();
    } else {
      result_ = reply.status();
    }
    // Only a verdict (or cancel) ends the stream. An error (the broker away, a receiver
    // that restarted and lost the session) leaves it to the pipe's own stall timeout,
    // which fails the hop as retryable.
    const bool over = result_.ok() || cancel.load();
    done_.store(true);
    if (over) stop_stream_.store(true);
  });
}

VerdictWatch::~VerdictWatch() {
  abandon();
  if (thread_.joinable()) thread_.join();
}

std::optional<proto::RecvResultReply> VerdictWatch::early_verdict() const {
  if (!done_.load() || !result_.ok()) return std::nullopt;
  return *result_;
}

Result<proto::RecvResultReply> VerdictWatch::wait() {
  if (thread_.joinable()) thread_.join();
  return result_;
}

}  // namespace zps::agent
