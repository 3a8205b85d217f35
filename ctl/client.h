// zpsctl's connection to the broker: one DEALER socket, requests with fresh ids, and
// waits that end after a timeout or on Ctrl-C, never blocking forever.
//
// A reply counts only when its `re` is the id of a request we are waiting for; anything
// else (a stale reply from before a broker restart, a malformed message) is dropped,
// and job_event notices are handed to whoever reads with next(). Linger is 0, so zpsctl
// exits promptly even when requests were never delivered.
//
// Thread-safety: one thread, like the socket it owns.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "shared/program_keys.h"
#include "shared/protocol.h"
#include "shared/status.h"

namespace zps::ctl {

class BrokerClient {
 public:
  using Millis = std::chrono::milliseconds;

  // Connects a DEALER socket (ZeroMQ connects in the background). Fails with
  // kInvalidArgument when the endpoint is malformed. `stop` (may be null) is the Ctrl-C
  // flag that ends every wait.
  // `security` makes the socket a CURVE client when it holds keys.
  static Result<std::unique_ptr<BrokerClient>> connect(zmq::context_t& ctx,
                                                       const std::string& endpoint,
                                                       const std::atomic<bool>* stop,
                                                       const ClientSecurity& security = {});
  BrokerClient(const BrokerClient&) = delete;
  BrokerClient& operator=(const BrokerClient&) = delete;

  const std::string& endpoint() const { return endpoint_; }

  // Sends a request under a fresh id, or under `reuse_id` when it is nonzero; returns the id.
  template <wire::HasFields M>
  uint64_t send(const M& request, uint64_t reuse_id = 0) {
    const uint64_t id = reuse_id != 0 ? reuse_id : next_id_++;
    send_body(proto::encode_request(request, id));
    return id;
  }

  // The next well-formed message within `wait` (a reply or a notice); nullopt when none
  // came or Ctrl-C was pressed.
  std::optional<proto::Envelope> next(Millis wait);

  // Sends a request and waits up to `timeout` for its reply, dropping everything else.
  // Fails with kTimeout when no reply came, kCancelled on Ctrl-C. A reply that carries
  // an error is still a reply: the caller reads ok / error_status().
  template <wire::HasFields M>
  Result<proto::Envelope> call(const M& request, Millis timeout) {
    return wait_reply(send(request), timeout);
  }
  Result<proto::Envelope> wait_reply(uint64_t id, Millis timeout);

  bool stopped() const { return stop_ != nullptr && stop_->load(); }

 private:
  BrokerClient(zmq::context_t& ctx, std::string endpoint, const std::atomic<bool>* stop);
  void send_body(const std::string& body);

  zmq::socket_t socket_;
  std::string endpoint_;
  const std::atomic<bool>* stop_;
  uint64_t next_id_ = 1;
};

}  // namespace zps::ctl
