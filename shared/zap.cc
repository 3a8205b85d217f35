#include "shared/zap.h"

#include <cerrno>
#include <exception>
#include <utility>

#include "shared/authorized_keys.h"
#include "shared/keys.h"

namespace zps {
namespace {

constexpr const char* kZapVersion = "1.0";
// A request has 6 frames plus the mechanism's credentials (CURVE 1, PLAIN 2, GSSAPI 1).
constexpr size_t kMinFrames = 6;
constexpr size_t kMaxFrames = 8;
// Domains are at most 254 bytes (ZMQ_ZAP_DOMAIN); routing ids 255; keys 32; PLAIN
// credentials are refused anyway. Anything larger is not from a sane libzmq.
constexpr size_t kMaxFrameBytes = 1024;

std::vector<std::string> reply(const std::string& request_id, const char* code,
                               const char* text, const std::string& user_id) {
  return {kZapVersion, request_id, code, text, user_id, ""};
}

// Reads every part of one message; `overflow` when it had more frames or larger ones
// than any request may (they are read and dropped, so the socket stays in step).
std::vector<std::string> recv_request(zmq::socket_t& socket, bool& overflow) {
  std::vector<std::string> frames;
  overflow = false;
  bool more = true;
  while (more) {
    zmq::message_t part;
    if (!socket.recv(part, zmq::recv_flags::none)) break;
    more = part.more();
    if (frames.size() >= kMaxFrames || part.size() > kMaxFrameBytes) {
      overflow = true;
      continue;
    }
    frames.push_back(part.to_string());
  }
  return frames;
}

void send_reply(zmq::socket_t& socket, const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    socket.send(zmq::buffer(frames[i]),
                i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

}  // namespace

std::string data_zap_domain(std::string_view session) { return "data:" + std::string(session); }

Result<ZapRequest> parse_zap_request(const std::vector<std::string>& frames) {
  if (frames.size() < kMinFrames || frames.size() > kMaxFrames) {
    return Status(Code::kProtocol, "ZAP request with " + std::to_string(frames.size()) + " frames");
  }
  if (frames[0] != kZapVersion) return Status(Code::kProtocol, "ZAP request of another version");
  for (const std::string& f : frames) {
    if (f.size() > kMaxFrameBytes) return Status(Code::kProtocol, "ZAP request frame too large");
  }
  ZapRequest r;
  r.request_id = frames[1];
  r.domain = frames[2];
  r.address = frames[3];
  r.routing_id = frames[4];
  r.mechanism = frames[5];
  const size_t credentials = frames.size() - kMinFrames;
  if (r.mechanism == "CURVE") {
    if (credentials != 1 || frames[6].size() != kCurveKeyBytes) {
      return Status(Code::kProtocol, "CURVE ZAP request without a 32-byte client key");
    }
    r.client_key = frames[6];
    auto z85 = binary_to_z85(r.client_key);
    if (!z85.ok()) return Status(Code::kProtocol, z85.status().message());
    r.client_key_z85 = std::move(z85).value();
  } else if (r.mechanism == "NULL" && credentials != 0) {
    return Status(Code::kProtocol, "NULL ZAP request with credentials");
  }
  return r;
}

// ---- ZapHandler ----------------------------------------------------------------------

ZapHandler::ZapHandler(ZapPolicy policy, Options options)
    : policy_(std::move(policy)), options_(std::move(options)) {}

Result<std::unique_ptr<ZapHandler>> ZapHandler::start(zmq::context_t& ctx, ZapPolicy policy,
                                                      Options options) {
  if (!policy) return Status(Code::kInternal, "ZAP handler started without a policy");
  zmq::socket_t socket;
  try {
    socket = zmq::socket_t(ctx, zmq::socket_type::rep);
    socket.set(zmq::sockopt::linger, 0);
    socket.bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    if (e.num() == EADDRINUSE) {
      return Status(Code::kInternal, "a ZAP handler already runs on this ZeroMQ context");
    }
    return Status(Code::kInternal, std::string("cannot start the ZAP handler: ") + e.what());
  }
  std::unique_ptr<ZapHandler> handler(new ZapHandler(std::move(policy), std::move(options)));
  // Bound here, before start() returns, so no handshake can find the endpoint missing;
  // the socket then moves to the handler thread (thread creation is the memory fence
  // libzmq asks for when a socket changes threads).
  handler->thread_ = std::thread(&ZapHandler::run, handler.get(), std::move(socket));
  return handler;
}

ZapHandler::~ZapHandler() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void ZapHandler::run(zmq::socket_t socket) {
  while (!stop_.load()) {
    try {
      zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, options_.poll_interval);
      if ((item.revents & ZMQ_POLLIN) == 0) continue;
      bool overflow = false;
      std::vector<std::string> frames = recv_request(socket, overflow);
      if (overflow) {
        ++malformed_;
        send_reply(socket, reply(frames.size() > 1 ? frames[1] : "", "500",
                                 "malformed ZAP request", ""));
        continue;
      }
      send_reply(socket, answer(frames));
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;  // the context is shutting down: close and leave
    }
  }
  // Closing releases the endpoint only later, on libzmq's reaper thread; unbinding
  // releases it now, so a new handler can start on this context as soon as the
  // destructor returns.
  try {
    socket.unbind(kZapEndpoint);
  } catch (const zmq::error_t&) {
    // the context is gone: so is the endpoint
  }
}

std::vector<std::string> ZapHandler::answer(const std::vector<std::string>& frames) {
  const std::string request_id = frames.size() > 1 ? frames[1] : "";
  auto request = parse_zap_request(frames);
  if (!request.ok()) {
    ++malformed_;
    return reply(request_id, "500", "malformed ZAP request", "");
  }
  std::optional<std::string> user_id;
  try {
    user_id = policy_(*request);
  } catch (const std::exception&) {
    // A policy bug must not leave the REP socket waiting for a reply that never comes
    // (every later handshake would hang): deny instead.
    ++malformed_;
    return reply(request_id, "500", "authentication policy failed", "");
  }
  if (options_.observer) {
    try {
      options_.observer(*request, user_id);
    } catch (const std::exception&) {
      // logging must not change the decision
    }
  }
  if (!user_id) {
    ++denied_;
    return reply(request_id, "400", "not authorized", "");
  }
  ++accepted_;
  return reply(request_id, "200", "OK", *user_id);
}

// ---- ZapKeyRegistry ------------------------------------------------------------------

Status ZapKeyRegistry::set(const std::string& domain, const std::string& client_key_z85,
                           std::string user_id) {
  if (domain.empty()) return Status(Code::kInvalidArgument, "empty ZAP domain");
  Status valid = validate_z85_key(client_key_z85, "client key");
  if (!valid.ok()) return valid.with_context("ZAP domain " + domain);
  auto raw = z85_to_binary(client_key_z85);
  if (!raw.ok()) return raw.status();
  if (user_id.empty()) user_id = client_key_z85;
  std::lock_guard<std::mutex> lock(mu_);
  by_domain_[domain] = Expected{std::move(raw).value(), std::move(user_id)};
  return Status::Ok();
}

void ZapKeyRegistry::erase(const std::string& domain) {
  std::lock_guard<std::mutex> lock(mu_);
  by_domain_.erase(domain);
}

size_t ZapKeyRegistry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_domain_.size();
}

std::optional<std::string> ZapKeyRegistry::check(const ZapRequest& request) const {
  if (request.mechanism != "CURVE") return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_domain_.find(request.domain);
  if (it == by_domain_.end() || it->second.key != request.client_key) return std::nullopt;
  return it->second.user_id;
}

ZapPolicy ZapKeyRegistry::policy() const {
  return [this](const ZapRequest& request) { return check(request); };
}

ScopedZapKey& ScopedZapKey::operator=(ScopedZapKey&& other) noexcept {
  if (this != &other) {
    reset();
    registry_ = std::exchange(other.registry_, nullptr);
    domain_ = std::move(other.domain_);
  }
  return *this;
}

Result<ScopedZapKey> ScopedZapKey::add(ZapKeyRegistry& registry, const std::string& domain,
                                       const std::string& client_key_z85, std::string user_id) {
  ZPS_RETURN_IF_ERROR(registry.set(domain, client_key_z85, std::move(user_id)));
  return ScopedZapKey(&registry, domain);
}

void ScopedZapKey::reset() {
  if (registry_ != nullptr) registry_->erase(domain_);
  registry_ = nullptr;
  domain_.clear();
}

// ---- Policies ------------------------------------------------------------------------

ZapPolicy authorized_keys_policy(std::shared_ptr<const AuthorizedKeys> keys, std::string domain) {
  return [keys = std::move(keys), domain = std::move(domain)](
             const ZapRequest& request) -> std::optional<std::string> {
    if (request.mechanism != "CURVE" || request.domain != domain || !keys) return std::nullopt;
    auto identity = keys->find(request.client_key);
    if (!identity) return std::nullopt;
    return identity->user_id();
  };
}

}  // namespace zps
