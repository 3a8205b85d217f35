// One request sent straight to a broker, as a client that skips zpsctl's own checks
// would, and the broker's reply to it: for tests of what the broker refuses on its own.
//
// Thread-safety: one thread (each call uses a socket of its own).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "shared/program_keys.h"
#include "shared/protocol.h"

namespace zps::test {

// Sends `body` (a request with id `id`) on a fresh DEALER, a CURVE client when
// `security` holds keys, and waits up to `timeout` for the reply to `id`.
std::optional<proto::Envelope> raw_request(zmq::context_t& ctx, const std::string& endpoint,
                                           const std::string& body, uint64_t id,
                                           const ClientSecurity& security,
                                           std::chrono::milliseconds timeout);

template <wire::HasFields M>
std::optional<proto::Envelope> raw_call(zmq::context_t& ctx, const std::string& endpoint,
                                        const M& request, const ClientSecurity& security = {},
                                        std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  constexpr uint64_t kId = 77;
  return raw_request(ctx, endpoint, proto::encode_request(request, kId), kId, security, timeout);
}

}  // namespace zps::test
