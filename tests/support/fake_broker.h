// The broker's side of one agent's connection, played by a test: a ROUTER the agent
// connects to, which answers the agent's hello and sends requests as a broker (a buggy,
// stale or hostile one) would forward them. So a test can talk to a real receiving
// agent with the broker bypassed.
//
// With keys it is a CURVE server with a ZAP handler on `ctx` that accepts only
// `agent_key` (as "agent:<id>").
//
// Thread-safety: one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "shared/keys.h"
#include "shared/protocol.h"
#include "shared/zap.h"

namespace zps::test {

class FakeBroker {
 public:
  struct Curve {
    KeyPair own;
    std::string agent_key;  // Z85: the one client key let in
    std::string agent_id;
  };

  // Binds tcp://127.0.0.1:* (throws zmq::error_t / std::runtime_error on failure).
  FakeBroker(zmq::context_t& ctx, std::optional<Curve> curve = std::nullopt);
  ~FakeBroker();
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  const std::string& endpoint() const { return endpoint_; }

  // Waits for the agent's hello and registers it.
  bool accept_agent(std::chrono::milliseconds timeout);

  // Sends a request to the agent and waits for the reply to it.
  template <wire::HasFields M>
  std::optional<proto::Envelope> call(const M& request,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const uint64_t id = next_id_++;
    return call_raw(proto::encode_request(request, id), id, timeout);
  }
  std::optional<proto::Envelope> call_raw(const std::string& body, uint64_t id,
                                          std::chrono::milliseconds timeout);

 private:
  // Handles what arrives within `wait`: hellos are answered, heartbeats and notices
  // dropped; returns the reply to `want` when it is among them.
  std::optional<proto::Envelope> pump(std::chrono::milliseconds wait, uint64_t want);

  std::unique_ptr<ZapHandler> zap_;  // outlives router_
  zmq::socket_t router_;
  std::string endpoint_;
  std::string agent_;
  uint64_t next_id_ = 1000;
};

}  // namespace zps::test
