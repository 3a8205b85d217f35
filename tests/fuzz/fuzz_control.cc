// libFuzzer target for the control-message decoder (shared/protocol.h, shared/wire.h).
//
// Besides "never crash, leak or run away with memory" it checks what the protocol
// promises about whatever decode() accepts:
//   - every failure is a kProtocol Status, from decode() and from Envelope::as<M>();
//   - msgpack's unpack never refuses what wire::prescan() let through;
//   - a failed reply never turns into an ok Status;
//   - as<M>() works (or fails cleanly) for every message type, and what it returns packs
//     and reads back to the same bytes;
//   - with_id() and with_field(), which the broker uses to forward messages, produce a
//     message that decodes again (also both in turn, as for a forwarded prepare), with
//     the new id or field and the rest of the envelope kept.
// Input format: tests/fuzz/inputs.h.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "shared/protocol.h"
#include "tests/fuzz/inputs.h"

namespace zps::fuzz {
namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_control: %s: %s\n", what, detail.c_str());
  std::abort();
}

void expect_protocol_error(const Status& s, const char* what) {
  if (s.ok()) fail(what, "failed without a status");
  if (s.code() != Code::kProtocol) fail(what, "not a kProtocol error: " + s.to_string());
}

std::string packed(const auto& m) {
  msgpack::sbuffer buf = wire::pack(m);
  return std::string(buf.data(), buf.size());
}

template <class M>
void read_as(const proto::Envelope& e) {
  Result<M> m = e.as<M>();
  if (!m.ok()) {
    expect_protocol_error(m.status(), "Envelope::as");
    return;
  }
  // Whatever a handler was given must survive being sent on.
  const std::string once = packed(*m);
  Result<M> again = wire::unpack_as<M>(once.data(), once.size());
  if (!again.ok()) fail("re-reading a packed message", again.status().to_string());
  if (packed(*again) != once) fail("pack/unpack round trip", "bytes differ in '" + e.type + "'");
}

template <class... Ms>
void read_as_every(const proto::Envelope& e, TypeList<Ms...>) {
  (read_as<Ms>(e), ...);
}

bool has_key(const proto::Envelope& e, std::string_view key) {
  const auto& map = e.body->get().via.map;
  for (uint32_t i = 0; i < map.size; ++i) {
    const auto& k = map.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      return true;
    }
  }
  return false;
}

// Decodes a copy that with_id() or with_field() made of `from` by setting `key`. It must
// decode, except when the rewrite had to add the key to a map that was already full:
// then the next hop refuses it for its size (and the broker must not forward it; see
// broker/jobs.cc). nullopt in that case.
std::optional<proto::Envelope> redecode(const proto::Envelope& from, std::string_view key,
                                        const std::string& body, const char* what) {
  Result<proto::Envelope> e =
      proto::decode(proto::kSignature.data(), proto::kSignature.size(), body.data(), body.size());
  if (e.ok()) return std::move(*e);
  const bool overflow =
      !has_key(from, key) && from.body->get().via.map.size == wire::kMaxMapEntries;
  if (overflow && e.status().message().find("more than the limit of") != std::string::npos) {
    return std::nullopt;
  }
  fail(what, "result does not decode: " + e.status().to_string());
}

void check_forwarding(const proto::Envelope& e, unsigned char selector) {
  const uint64_t new_id = kNewIds[selector % std::size(kNewIds)];
  const std::string_view id_key = e.is_reply() ? "re" : "id";
  if (auto moved = redecode(e, id_key, proto::with_id(e, new_id), "with_id")) {
    if (moved->type != e.type || moved->ok != e.ok) fail("with_id", "changed the envelope");
    if (e.is_reply() ? moved->re != new_id || moved->id != e.id
                     : moved->id != new_id || moved->re != e.re) {
      fail("with_id", "id " + std::to_string(new_id) + " did not land in '" + e.type + "'");
    }
  }

  const std::string sender(kSenders[(selector >> 3) % std::size(kSenders)]);
  auto stamped = redecode(e, "sender", proto::with_field(e, "sender", sender), "with_field");
  if (!stamped) return;
  if (stamped->type != e.type || stamped->id != e.id || stamped->re != e.re ||
      stamped->ok != e.ok) {
    fail("with_field", "changed the envelope");
  }
  Result<proto::PrepareRequest> prepare = stamped->as<proto::PrepareRequest>();
  if (prepare.ok() && prepare->sender != sender) fail("with_field", "sender not stamped");

  // What the broker does to a prepare it forwards: stamp, then renumber.
  auto both = redecode(*stamped, id_key, proto::with_id(*stamped, new_id), "with_field + with_id");
  if (both && both->type != e.type) fail("with_field + with_id", "changed the type");
}

}  // namespace
}  // namespace zps::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zps;
  if (size == 0) return 0;
  const unsigned char selector = data[0];
  const char* rest = reinterpret_cast<const char*>(data + 1);
  size_t rest_size = size - 1;

  std::string_view sig = proto::kSignature;
  if (selector >= fuzz::kForeignSignature) {
    const size_t n = std::min<size_t>(selector & 7, rest_size);
    sig = std::string_view(rest, n);
    rest += n;
    rest_size -= n;
  }

  // wire.h's limits are all checked by the pre-scan; msgpack's own unpack_limit is only
  // a second fence and must never be what refuses a message.
  if (wire::prescan(rest, rest_size).ok()) {
    Result<msgpack::object_handle> h = wire::unpack_bounded(rest, rest_size);
    if (!h.ok()) {
      fuzz::fail("unpack_bounded", "refused what prescan passed: " + h.status().to_string());
    }
  }

  Result<proto::Envelope> e = proto::decode(sig.data(), sig.size(), rest, rest_size);
  if (!e.ok()) {
    fuzz::expect_protocol_error(e.status(), "decode");
    return 0;
  }
  if (sig != proto::kSignature) fuzz::fail("decode", "accepted a foreign signature");

  const Status err = e->error_status();
  if (err.ok() != e->ok) fuzz::fail("error_status", "disagrees with ok: " + err.to_string());

  fuzz::read_as_every(*e, fuzz::Catalogue{});
  fuzz::check_forwarding(*e, selector);
  return 0;
}
