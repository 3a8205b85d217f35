// The sender's wait for a receive session's verdict, started before the hop's stream.
//
// A receiver answers recv_result only when its zfs recv has ended. Asked while the
// stream still runs, the answer comes early exactly when the receive ended early: zfs
// recv refused the stream (a plain hop into a modified target) or gave up (the pool is
// full). stop_stream() is then set, so the sender stops streaming at once instead of
// waiting out the pipe's stall timeout for a reader that is gone.
//
// Thread-safety: one owner thread; the watch's own thread only sets the flags.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "shared/protocol.h"
#include "shared/status.h"

namespace zps::agent {

class VerdictWatch {
 public:
  // As long as a receive may take; the receiver's liveness ends a wait on a dead one.
  static constexpr std::chrono::hours kTimeout{24};

  // Asks for the verdict of `session` of `job`; gives up when `cancel` is set.
  VerdictWatch(zmq::context_t& ctx, const std::string& bus_endpoint, uint64_t job,
               uint64_t session, const std::atomic<bool>& cancel);
  ~VerdictWatch();  // abandons the wait and joins
  VerdictWatch(const VerdictWatch&) = delete;
  VerdictWatch& operator=(const VerdictWatch&) = delete;

  // Set once the verdict came (the session is over) or the job was cancelled: the
  // stream has no reader any more.
  const std::atomic<bool>& stop_stream() const { return stop_stream_; }
  // The verdict, when it has already come.
  std::optional<proto::RecvResultReply> early_verdict() const;
  // Waits for the answer. An error that is no answer from the receiver (the broker was
  // away, cancel) leaves the caller to ask again or give up.
  Result<proto::RecvResultReply> wait();
  // Stops waiting (within 100 ms); for hops that failed and settle their session
  // themselves.
  void abandon() { abandon_.store(true); }

 private:
  std::atomic<bool> abandon_{false};
  std::atomic<bool> stop_stream_{false};
  std::atomic<bool> done_{false};
  Result<proto::RecvResultReply> result_{Status(Code::kInternal, "no answer yet")};
  std::thread thread_;
};

}  // namespace zps::agent
