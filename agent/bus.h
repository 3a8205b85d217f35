// The agent's internal bus: how worker threads (jobs, receive sessions, listing tasks)
// talk to the broker through the one DEALER socket the agent's main loop owns.
//
// The main loop binds an inproc ROUTER. A worker owns a BusClient (an inproc DEALER) and
// sends frames [request id (8 bytes, 0 for notices and replies), "ZPS1", body]. The main
// loop forwards the body to the broker and, for requests, remembers which worker asked,
// so the broker's reply is routed back to it. Request ids come from one counter per
// agent process (next_request_id), so they never collide.
//
// Thread-safety: a BusClient belongs to the thread that created it. next_request_id()
// is safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <zmq.hpp>

#include "shared/protocol.h"
#include "shared/status.h"

namespace zps::agent {

uint64_t next_request_id();

class BusClient {
 public:
  BusClient(zmq::context_t& ctx, const std::string& endpoint);

  // A notice or a reply: sent to the broker as is.
  void send(const std::string& body);

  // Sends a request (built with id) and waits for its reply. kTimeout after `timeout`;
  // kCancelled as soon as `cancel` is set (checked every 100 ms); kUnavailable when the
  // agent lost its broker connection while waiting. A reply with ok=false is returned
  // as its error Status.
  template <wire::HasFields M>
  Result<proto::Envelope> call(const M& request, std::chrono::milliseconds timeout,
                               const std::atomic<bool>* cancel = nullptr) {
    const uint64_t id = next_request_id();
    return call_raw(proto::encode_request(request, id), id, timeout, cancel);
  }

  // The same, stopped with kCancelled as soon as `stop` returns true (asked every 100 ms).
  template <wire::HasFields M>
  Result<proto::Envelope> call(const M& request, std::chrono::milliseconds timeout,
                               const std::function<bool()>& stop) {
    const uint64_t id = next_request_id();
    return call_raw(proto::encode_request(request, id), id, timeout, stop);
  }

  Result<proto::Envelope> call_raw(const std::string& body, uint64_t id,
                                   std::chrono::milliseconds timeout,
                                   const std::atomic<bool>* cancel);
  Result<proto::Envelope> call_raw(const std::string& body, uint64_t id,
                                   std::chrono::milliseconds timeout,
                                   const std::function<bool()>& stop);

 private:
  zmq::socket_t socket_;
};

}  // namespace zps::agent
