#include "shared/protocol.h"

namespace zps::proto {
namespace {

// The envelope's own keys, read before the body is handed to a handler.
struct Head {
  std::string t;
  uint64_t id = 0;
  uint64_t re = 0;
  std::optional<bool> ok;
  std::optional<WireError> err;
  template <class V>
  void fields(V& v) {
    v("t", t);
    v("id", id);
    v("re", re);
    v("ok", ok);
    v("err", err);
  }
};

struct ErrorBody {
  WireError err;
  template <class V>
  void fields(V& v) {
    v("err", err);
  }
};

bool valid_type_name(std::string_view t) {
  if (t.empty() || t.size() > 32) return false;
  for (char c : t) {
    if (!((c >= 'a' && c <= 'z') || c == '_')) return false;
  }
  return true;
}

}  // namespace

Status Envelope::error_status() const {
  if (ok) return Status::Ok();
  // A failed reply is never an ok Status, whatever code name the peer put in it.
  Code code = code_from_name(err.code);
  if (code == Code::kOk) code = Code::kInternal;
  return Status(code, err.msg);
}

Result<Envelope> decode(const void* sig, size_t sig_size, const void* body, size_t body_size) {
  if (sig_size != kSignature.size() ||
      std::string_view(static_cast<const char*>(sig), sig_size) != kSignature) {
    return Status(Code::kProtocol, "not a zpsend control message (bad signature frame; expected " +
                                       std::string(kSignature) + ")");
  }
  auto handle = wire::unpack_bounded(static_cast<const char*>(body), body_size);
  if (!handle.ok()) return handle.status();
  Head head;
  wire::Reader r(handle->get());
  if (r.status().ok()) head.fields(r);
  if (!r.status().ok()) return r.status();
  if (!valid_type_name(head.t)) {
    return Status(Code::kProtocol, "message has no valid type field 't'");
  }
  Envelope e;
  e.type = std::move(head.t);
  e.id = head.id;
  e.re = head.re;
  if (e.is_reply()) {
    if (e.re == 0) return Status(Code::kProtocol, "reply without 're'");
    e.ok = head.ok.value_or(false);
    if (!e.ok) {
      e.err = head.err.value_or(WireError{"internal", "peer replied with an error but no detail"});
    }
  }
  e.body = std::make_shared<msgpack::object_handle>(std::move(*handle));
  return e;
}

std::string encode_error(uint64_t re, const Status& status) {
  ErrorBody b{WireError{std::string(code_name(status.code())), status.message()}};
  return detail::encode(detail::Head{kReplyType, 0, re, true, false}, b);
}

namespace {

// Copies the map, replacing (or adding) one key whose value `put` packs.
template <typename Put>
std::string rewrite(const Envelope& e, std::string_view key, Put put) {
  const msgpack::object& map = e.body->get();
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  uint32_t n = map.via.map.size;
  bool present = false;
  for (uint32_t i = 0; i < n; ++i) {
    const auto& k = map.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      present = true;
    }
  }
  pk.pack_map(present ? n : n + 1);
  for (uint32_t i = 0; i < n; ++i) {
    const auto& kv = map.via.map.ptr[i];
    pk.pack(kv.key);
    if (kv.key.type == msgpack::type::STR &&
        std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key) {
      put(pk);
    } else {
      pk.pack(kv.val);
    }
  }
  if (!present) {
    pk.pack(std::string(key));
    put(pk);
  }
  return std::string(buf.data(), buf.size());
}

}  // namespace

std::string with_id(const Envelope& e, uint64_t new_id) {
  return rewrite(e, e.is_reply() ? "re" : "id",
                 [&](msgpack::packer<msgpack::sbuffer>& pk) { pk.pack(new_id); });
}

std::string with_field(const Envelope& e, const std::string& key, const std::string& value) {
  return rewrite(e, key, [&](msgpack::packer<msgpack::sbuffer>& pk) { pk.pack(value); });
}

}  // namespace zps::proto
