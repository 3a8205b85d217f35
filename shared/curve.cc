#include "shared/curve.h"

#include <zmq.h>

namespace zps {
namespace {

// ZMQ_ZAP_ENFORCE_DOMAIN is declared only with ZMQ_BUILD_DRAFT_API; its number is
// stable since libzmq 4.3.0.
#ifdef ZMQ_ZAP_ENFORCE_DOMAIN
constexpr int kZapEnforceDomain = ZMQ_ZAP_ENFORCE_DOMAIN;
#else
constexpr int kZapEnforceDomain = 93;
#endif
constexpr size_t kMaxZapDomainBytes = 254;

Status set_raw(zmq::socket_t& socket, int option, const void* value, size_t size,
               const char* what) {
  if (zmq_setsockopt(socket.handle(), option, value, size) != 0) {
    return Status(Code::kInternal,
                  std::string("cannot set ") + what + ": " + zmq_strerror(zmq_errno()));
  }
  return Status::Ok();
}

Status set_key(zmq::socket_t& socket, int option, const std::string& z85, const char* what) {
  auto raw = z85_to_binary(z85);
  if (!raw.ok()) return raw.status().with_context(what);
  return set_raw(socket, option, raw->data(), raw->size(), what);
}

Status set_own_keys(zmq::socket_t& socket, const KeyPair& own) {
  ZPS_RETURN_IF_ERROR(validate_z85_key(own.public_z85, "own public key"));
  ZPS_RETURN_IF_ERROR(validate_z85_key(own.secret_z85, "own secret key"));
  if (!zmq_has("curve")) {
    return Status(Code::kInternal, "this libzmq was built without CURVE support");
  }
  ZPS_RETURN_IF_ERROR(set_key(socket, ZMQ_CURVE_PUBLICKEY, own.public_z85, "CURVE public key"));
  return set_key(socket, ZMQ_CURVE_SECRETKEY, own.secret_z85, "CURVE secret key");
}

}  // namespace

Status make_curve_server(zmq::socket_t& socket, const KeyPair& own, const std::string& zap_domain) {
  if (zap_domain.empty() || zap_domain.size() > kMaxZapDomainBytes) {
    return Status(Code::kInvalidArgument,
                  "a CURVE server needs a ZAP domain of 1-254 bytes, got " +
                      std::to_string(zap_domain.size()));
  }
  ZPS_RETURN_IF_ERROR(set_own_keys(socket, own));
  const int one = 1;
  ZPS_RETURN_IF_ERROR(set_raw(socket, ZMQ_CURVE_SERVER, &one, sizeof one, "CURVE server"));
  ZPS_RETURN_IF_ERROR(
      set_raw(socket, ZMQ_ZAP_DOMAIN, zap_domain.data(), zap_domain.size(), "ZAP domain"));
  // Fail closed: with this set, a missing ZAP handler refuses clients instead of
  // waving them all through. Older libraries lack it; the handler is then the only guard.
  (void)zmq_setsockopt(socket.handle(), kZapEnforceDomain, &one, sizeof one);
  return Status::Ok();
}

Status make_curve_client(zmq::socket_t& socket, const KeyPair& own,
                         const std::string& server_public_z85) {
  ZPS_RETURN_IF_ERROR(validate_z85_key(server_public_z85, "server public key"));
  ZPS_RETURN_IF_ERROR(set_own_keys(socket, own));
  return set_key(socket, ZMQ_CURVE_SERVERKEY, server_public_z85, "CURVE server key");
}

std::function<Status(zmq::socket_t&)> curve_server_setup(KeyPair own, std::string zap_domain) {
  return [own = std::move(own), zap_domain = std::move(zap_domain)](zmq::socket_t& socket) {
    return make_curve_server(socket, own, zap_domain);
  };
}

std::function<Status(zmq::socket_t&)> curve_client_setup(KeyPair own,
                                                         std::string server_public_z85) {
  return [own = std::move(own), server = std::move(server_public_z85)](zmq::socket_t& socket) {
    return make_curve_client(socket, own, server);
  };
}

bool zap_enforcement_supported() {
  static const bool supported = [] {
    void* ctx = zmq_ctx_new();
    if (ctx == nullptr) return false;
    void* socket = zmq_socket(ctx, ZMQ_PULL);
    const int one = 1;
    const bool ok =
        socket != nullptr && zmq_setsockopt(socket, kZapEnforceDomain, &one, sizeof one) == 0;
    if (socket != nullptr) zmq_close(socket);
    zmq_ctx_term(ctx);
    return ok;
  }();
  return supported;
}

std::string user_id_of(const zmq::message_t& msg) {
  // zmq_msg_gets, not message_t::gets: that throws when the property is absent.
  const char* value = zmq_msg_gets(msg.handle(), "User-Id");
  return value == nullptr ? std::string() : std::string(value);
}

}  // namespace zps
