// The ZAP handler (ZeroMQ RFC 27): who may complete a CURVE handshake.
//
// CURVE alone encrypts but lets any key in: libzmq asks a ZAP handler, if one is bound
// to "inproc://zeromq.zap.01" on the socket's context, whether to accept each client
// key. ZapHandler is that handler: it answers each request in its own thread by calling
// a policy, which returns the User-Id to accept the connection with (every message from
// it then carries that User-Id as a property: user_id_of() in shared/curve.h) or nullopt
// to deny it (status 400: the connection is closed before any message gets through).
//
// Each CURVE server socket names a ZAP domain (ZMQ_ZAP_DOMAIN), which the policy sees:
// the broker's ROUTER uses "control"; each receive session's PULL socket uses its own
// "data:<session>", and ZapKeyRegistry maps each such domain to the one client key it
// accepts.
//
// One handler per context (the endpoint is fixed). Start it before the first CURVE
// server socket binds, and destroy it after the last one closes: make_curve_server sets
// ZMQ_ZAP_ENFORCE_DOMAIN where libzmq supports it, so without a handler every client is
// refused rather than every client accepted.
//
// Thread-safety: the handler thread owns the REP socket. A policy runs on that thread
// and must be safe against the threads that change its data (ZapKeyRegistry is; an
// AuthorizedKeys is immutable). Construction and destruction belong to one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "shared/status.h"

namespace zps {

class AuthorizedKeys;

inline constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
inline constexpr const char* kControlZapDomain = "control";

// "data:<session>": the ZAP domain of one receive session's data socket.
std::string data_zap_domain(std::string_view session);

struct ZapRequest {
  std::string request_id;
  std::string domain;
  std::string address;     // the client's IP address
  std::string routing_id;  // what the client announced as its routing id (untrusted)
  std::string mechanism;   // "NULL", "PLAIN", "CURVE"
  std::string client_key;      // CURVE only: 32 raw bytes
  std::string client_key_z85;  // CURVE only: 40 characters
};

// Returns the User-Id to accept the connection with, or nullopt to deny it.
using ZapPolicy = std::function<std::optional<std::string>(const ZapRequest&)>;
// Sees every decision (for logs: who was refused, from where). Runs on the handler
// thread.
using ZapObserver =
    std::function<void(const ZapRequest&, const std::optional<std::string>& user_id)>;

// Parses the frames of a request (after REP has removed the envelope): version "1.0",
// request id, domain, address, identity, mechanism, credentials. kProtocol for any
// malformation: wrong version, frame count, sizes, or a CURVE key that is not 32 bytes.
Result<ZapRequest> parse_zap_request(const std::vector<std::string>& frames);

class ZapHandler {
 public:
  struct Options {
    // How often the thread looks at its stop flag: the destructor's worst-case wait.
    std::chrono::milliseconds poll_interval{50};
    ZapObserver observer;  // may be empty
  };

  // Binds the handler endpoint on `ctx` and starts answering. kInternal when another
  // handler already runs on this context.
  static Result<std::unique_ptr<ZapHandler>> start(zmq::context_t& ctx, ZapPolicy policy,
                                                   Options options);
  static Result<std::unique_ptr<ZapHandler>> start(zmq::context_t& ctx, ZapPolicy policy) {
    return start(ctx, std::move(policy), Options{});
  }

  // Stops the thread and closes the socket. Also safe after the context was shut down
  // (the thread has then ended on its own).
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Counters, for tests and metrics.
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t denied() const { return denied_.load(); }
  uint64_t malformed() const { return malformed_.load(); }

 private:
  ZapHandler(ZapPolicy policy, Options options);
  void run(zmq::socket_t socket);
  // The reply frames for one request's frames.
  std::vector<std::string> answer(const std::vector<std::string>& frames);

  ZapPolicy policy_;
  Options options_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> denied_{0};
  std::atomic<uint64_t> malformed_{0};
  std::thread thread_;
};

// Which client key each ZAP domain accepts: a receiver registers the sending agent's
// key for a session's domain before it binds the session's data socket, and erases it
// when the session ends. A domain that is not registered accepts nobody.
//
// Thread-safety: every method may be called from any thread; policy() reads under the
// same lock. The registry must outlive every handler using its policy().
class ZapKeyRegistry {
 public:
  ZapKeyRegistry() = default;
  ZapKeyRegistry(const ZapKeyRegistry&) = delete;
  ZapKeyRegistry& operator=(const ZapKeyRegistry&) = delete;

  // Accept `client_key_z85` (only it) on `domain`, with `user_id` as the connection's
  // User-Id (e.g. "agent:node1"; empty gives the Z85 key). Replaces an earlier entry.
  // kInvalidArgument for an empty domain or an invalid key.
  Status set(const std::string& domain, const std::string& client_key_z85,
             std::string user_id = {});
  void erase(const std::string& domain);
  size_t size() const;

  // The policy: CURVE, a registered domain, and exactly its key.
  std::optional<std::string> check(const ZapRequest& request) const;
  ZapPolicy policy() const;

 private:
  struct Expected {
    std::string key;  // raw 32 bytes
    std::string user_id;
  };
  mutable std::mutex mu_;
  std::map<std::string, Expected> by_domain_;
};

// Keeps one domain registered for its lifetime (a receive session holds one).
class ScopedZapKey {
 public:
  ScopedZapKey() = default;
  ScopedZapKey(ZapKeyRegistry* registry, std::string domain)
      : registry_(registry), domain_(std::move(domain)) {}
  ~ScopedZapKey() { reset(); }
  ScopedZapKey(ScopedZapKey&& other) noexcept { *this = std::move(other); }
  ScopedZapKey& operator=(ScopedZapKey&& other) noexcept;
  ScopedZapKey(const ScopedZapKey&) = delete;
  ScopedZapKey& operator=(const ScopedZapKey&) = delete;

  // Registers and returns the guard, or the registry's error.
  static Result<ScopedZapKey> add(ZapKeyRegistry& registry, const std::string& domain,
                                  const std::string& client_key_z85, std::string user_id = {});
  const std::string& domain() const { return domain_; }
  void reset();

 private:
  ZapKeyRegistry* registry_ = nullptr;
  std::string domain_;
};

// The broker's policy: CURVE on `domain`, and a key listed in `keys`; the User-Id is
// the key's identity ("agent:node1", "operator:alice").
ZapPolicy authorized_keys_policy(std::shared_ptr<const AuthorizedKeys> keys,
                                 std::string domain = kControlZapDomain);

}  // namespace zps
