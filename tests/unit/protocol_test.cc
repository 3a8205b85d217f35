// The control protocol: every message type survives encode -> decode -> as<M>() with
// every field intact, the envelope helpers (errors, with_id, with_field) keep what they
// do not change, and hostile bodies are error values decoded within bounded memory.
#include "shared/protocol.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "tests/unit/alloc_meter.h"

namespace zps::proto {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// The most a single hostile decode may add to the heap. The worst honest case is the
// msgpack tree of an 8 MiB body (about 32 MiB); the tests report what they actually see.
constexpr int64_t kMemoryBound = int64_t{64} << 20;

std::string raw(const std::function<void(Packer&)>& f) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  f(pk);
  return std::string(buf.data(), buf.size());
}

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out.append(s);
  return out;
}

Result<Envelope> decode_body(const std::string& body, std::string_view sig = kSignature) {
  return decode(sig.data(), sig.size(), body.data(), body.size());
}

template <wire::HasFields M>
std::string bytes_of(const M& m) {
  auto buf = wire::pack(m);
  return std::string(buf.data(), buf.size());
}

// ---- A filled-in sample of every message ------------------------------------------

PoolSpace pool(const char* name, uint64_t free) { return PoolSpace{name, free}; }

Capabilities every_capability() {
  Capabilities c;
  c.list_parsable = c.resume_tokens = c.bookmarks = c.holds = c.send_estimate = c.recv_no_mount =
      true;
  return c;
}

Load busy_load() {
  Load l;
  l.active_recvs = 2;
  l.peak_recvs = 3;
  l.running_jobs = 1;
  l.recvs = {{11, "backup/zones/node1/zones/a", 5}, {12, "backup/zones/node1/zones/b", 6}};
  l.jobs = {11, std::numeric_limits<uint64_t>::max()};
  return l;
}

AgentInfo agent_info(const char* id) {
  AgentInfo a;
  a.id = id;
  a.host = std::string(id) + ".example";
  a.version = "0.1.0";
  a.alive = true;
  a.recv_roots = {"backup/zones", "tank/recv"};
  a.active_recvs = 1;
  a.max_recvs = 4;
  a.peak_recvs = 3;
  a.running_jobs = 2;
  a.data_address = "10.0.0.2";
  a.pools = {pool("backup", 1ull << 40), pool("tank", 0xfffffffffffull)};
  a.last_seen_ms = 1500;
  return a;
}

HopInfo hop(uint32_t n) {
  HopInfo h;
  h.n = n;
  h.dataset = "zones/test";
  h.from = "s" + std::to_string(n);
  h.to = "s" + std::to_string(n + 1);
  h.bytes = (1ull << 33) + n;
  h.state = "failed";
  h.seconds = 12.25;
  h.error = "zfs recv: cannot receive: checksum mismatch";
  return h;
}

JobInfo job_info(uint64_t id) {
  JobInfo j;
  j.id = id;
  j.state = "failed";
  j.source = "node1:zones/test";
  j.target = "node2:backup/zones/test";
  j.recursive = true;
  j.force = true;
  j.error = "target has snapshots newer than the last common one (@s7)";
  j.error_code = "target_newer";
  j.warnings = {"snapshot @s3 vanished during the sync", "slow"};
  j.created_ms = 1700000000000ull;
  j.ended_ms = 1700000009999ull;
  j.bytes = 123456789012ull;
  j.hops_done = 2;
  j.hops = {hop(1), hop(2)};
  return j;
}

template <class M>
struct Sample;

#define ZPS_SAMPLE(M)                        \
  template <>                                \
  struct Sample<M> {                         \
    static constexpr const char* kName = #M; \
    static M make();                         \
  };                                         \
  M Sample<M>::make()

ZPS_SAMPLE(Hello) {
  Hello h;
  h.agent = "node1";
  h.host = "node1.example";
  h.version = "0.1.0";
  h.data_address = "192.0.2.10";
  h.recv_roots = {"backup/zones", "tank/r"};
  h.pools = {pool("backup", 5000), pool("tank", std::numeric_limits<uint64_t>::max())};
  h.max_recvs = 8;
  h.caps = every_capability();
  h.load = busy_load();
  h.instance = 0x0123456789abcdefULL;
  return h;
}
ZPS_SAMPLE(HelloReply) {
  return {.broker_version = "0.1.0", .heartbeat_ms = 1000, .liveness = 3};
}
ZPS_SAMPLE(Heartbeat) {
  return {.load = busy_load(), .pools = {pool("backup", 77)}, .stopping = "SIGTERM"};
}
ZPS_SAMPLE(Reregister) { return {}; }
ZPS_SAMPLE(AgentsRequest) { return {}; }
ZPS_SAMPLE(AgentsReply) { return {.agents = {agent_info("node1"), agent_info("node2")}}; }
ZPS_SAMPLE(SnapshotsRequest) { return {.agent = "node1", .dataset = "zones/test"}; }
ZPS_SAMPLE(SnapshotsReply) {
  // guids are random 64-bit numbers: the top of the range must survive.
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  return {.snapshots = {{.name = "s1", .guid = kMax, .createtxg = 10},
                        {.name = "s2", .guid = kMax - 1, .createtxg = 11},
                        {.name = "s3", .guid = 1, .createtxg = kMax}}};
}
ZPS_SAMPLE(ReplicateRequest) {
  return {.source_agent = "node1",
          .source_dataset = "zones/test",
          .target_agent = "node2",
          .target_dataset = "backup/zones/test",
          .recursive = true,
          .force = true};
}
ZPS_SAMPLE(JobReply) { return {.job = job_info(7)}; }
ZPS_SAMPLE(JobsRequest) { return {.all = true}; }
ZPS_SAMPLE(JobsReply) { return {.jobs = {job_info(7), job_info(8)}}; }
ZPS_SAMPLE(JobRequest) { return {.job = 7}; }
ZPS_SAMPLE(WatchRequest) { return {.job = 8}; }
ZPS_SAMPLE(CancelRequest) { return {.job = 9}; }
ZPS_SAMPLE(LocksRequest) { return {}; }
ZPS_SAMPLE(LocksReply) {
  return {.locks = {{.agent = "node2", .dataset = "backup/zones/test", .recursive = true,
                     .job = 7, .fence = 41},
                    {.agent = "node3", .dataset = "b/x", .recursive = false, .job = 8,
                     .fence = 42}}};
}
ZPS_SAMPLE(JobEvent) {
  return {.job = 7,
          .kind = "progress",
          .dataset = "zones/test",
          .hop = 2,
          .of = 5,
          .from = "s1",
          .to = "s2",
          .bytes = 1ull << 35,
          .rate = 104857600.5,
          .message = "halfway",
          .state = job_info(7)};
}
ZPS_SAMPLE(JobStart) {
  return {.job = 7,
          .source_dataset = "zones/test",
          .target_agent = "node2",
          .target_dataset = "backup/zones/test",
          .recursive = true,
          .force = true,
          .fence = 41};
}
ZPS_SAMPLE(JobCancel) { return {.job = 7}; }
ZPS_SAMPLE(JobUpdate) {
  return {.job = 7,
          .kind = "hop_done",
          .dataset = "zones/test",
          .hop = 3,
          .of = 4,
          .from = "s2",
          .to = "s3",
          .bytes = 99,
          .rate = 0.125,
          .seconds = 3.5,
          .message = "done"};
}
ZPS_SAMPLE(JobEnd) {
  return {.job = 7,
          .state = "failed",
          .error = "zfs send died",
          .error_code = "zfs_failed",
          .receives_settled = true};
}
ZPS_SAMPLE(TargetStateRequest) {
  return {.job = 7,
          .dataset = "backup/zones/test",
          .origin_guid = std::numeric_limits<uint64_t>::max()};
}
ZPS_SAMPLE(TargetStateReply) {
  return {.exists = true,
          .snapshots = {{.name = "s1", .guid = 0xdeadbeefcafef00dull, .createtxg = 5}},
          .origin_present = true,
          .origin_name = "backup/zones/o@s1"};
}
ZPS_SAMPLE(PrepareRequest) {
  return {.job = 7,
          .hop = 3,
          .dataset = "backup/zones/test",
          .fence = 41,
          .force = true,
          .to_guid = 0xfedcba9876543210ull,
          .snapshot = "s3",
          .rollback_guid = 0x0123456789abcdefull,
          .plain = true,
          .sender = "node1",
          .sender_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"};
}
ZPS_SAMPLE(PrepareReply) {
  return {.endpoint = "tcp://192.0.2.11:7001",
          .token = "00112233445566778899aabbccddeeff",
          .session = 12,
          .server_key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"};
}
ZPS_SAMPLE(RecvResultRequest) { return {.job = 7, .session = 12}; }
ZPS_SAMPLE(RecvResultReply) {
  return {.ok = true,
          .exit_code = -9,
          .stderr_text = "cannot receive: stream is corrupt",
          .reason = "gap at chunk 17",
          .bytes = 4096,
          .guid = 0xffffffffffffff00ull,
          .snapshot = "s3"};
}
ZPS_SAMPLE(AbortRequest) { return {.job = 7, .session = 12, .reason = "sender gave up"}; }
ZPS_SAMPLE(Empty) { return {}; }

#undef ZPS_SAMPLE

// ---- Every field of a sample differs from its default -----------------------------
//
// A round trip proves nothing about a field that holds its default: a decoder that
// never reads it would pass. This walks a sample and a default-constructed value side by
// side and names every field (nested ones too) that the sample left at its default.

template <class T>
void collect_unset(const T& s, const T& d, const std::string& path, std::vector<std::string>& out);

template <class S>
struct UnsetWalker {
  const S* s;
  const S* d;
  std::string prefix;
  std::vector<std::string>* out;
  template <class T>
  void operator()(const char* key, T& field) {
    const auto offset = reinterpret_cast<const char*>(&field) - reinterpret_cast<const char*>(s);
    const T& dfield = *reinterpret_cast<const T*>(reinterpret_cast<const char*>(d) + offset);
    collect_unset(static_cast<const T&>(field), dfield, prefix + key, *out);
  }
};

template <class T>
void collect_unset(const T& s, const T& d, const std::string& path, std::vector<std::string>& out) {
  if constexpr (wire::HasFields<T>) {
    UnsetWalker<T> w{&s, &d, path.empty() ? "" : path + ".", &out};
    const_cast<T&>(s).fields(w);
  } else if constexpr (requires { s.has_value(); }) {
    if (!s.has_value()) return out.push_back(path);
    collect_unset(*s, typename T::value_type{}, path, out);
  } else if constexpr (requires { s.begin(); } && !std::is_same_v<T, std::string>) {
    if (s.empty()) return out.push_back(path);
    collect_unset(s.front(), typename T::value_type{}, path + "[0]", out);
  } else {
    if (s == d) out.push_back(path);
  }
}

// Keys the envelope owns; a message field of the same name would be shadowed by it.
const std::vector<std::string> kEnvelopeKeys = {"t", "id", "re", "ok", "err"};

struct KeyCollector {
  std::vector<std::string> keys;
  template <class T>
  void operator()(const char* key, T&) {
    keys.emplace_back(key);
  }
};

// ---- Round trips -------------------------------------------------------------------

template <class M>
class MessageTest : public ::testing::Test {};

using Messages = ::testing::Types<
    Hello, HelloReply, Heartbeat, Reregister, AgentsRequest, AgentsReply, SnapshotsRequest,
    SnapshotsReply, ReplicateRequest, JobReply, JobsRequest, JobsReply, JobRequest, WatchRequest,
    CancelRequest, LocksRequest, LocksReply, JobEvent, JobStart, JobCancel, JobUpdate, JobEnd,
    TargetStateRequest, TargetStateReply, PrepareRequest, PrepareReply, RecvResultRequest,
    RecvResultReply, AbortRequest, Empty>;

struct MessageName {
  template <class M>
  static std::string GetName(int) {
    return Sample<M>::kName;
  }
};

TYPED_TEST_SUITE(MessageTest, Messages, MessageName);

// The messages that are sent as requests or notices (they have a type of their own).
template <class M>
class RequestTest : public ::testing::Test {};

using Requests = ::testing::Types<Hello, Heartbeat, Reregister, AgentsRequest, SnapshotsRequest,
                                  ReplicateRequest, JobsRequest, JobRequest, WatchRequest,
                                  CancelRequest, LocksRequest, JobEvent, JobStart, JobCancel,
                                  JobUpdate, JobEnd, TargetStateRequest, PrepareRequest,
                                  RecvResultRequest, AbortRequest>;

TYPED_TEST_SUITE(RequestTest, Requests, MessageName);

// Every message with a type of its own is in Requests, so none misses the request tests.
template <class M, class... Rs>
constexpr bool listed(::testing::Types<Rs...>*) {
  return (std::is_same_v<M, Rs> || ...);
}
template <class... Ms>
constexpr bool requests_listed(::testing::Types<Ms...>*) {
  return ((!requires { Ms::kType; } || listed<Ms>(static_cast<Requests*>(nullptr))) && ...);
}
static_assert(requests_listed(static_cast<Messages*>(nullptr)));

template <class M>
void expect_same(const M& want, const Result<M>& got) {
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(bytes_of(*got), bytes_of(want)) << "a field changed on the way";
}

TYPED_TEST(MessageTest, SampleSetsEveryField) {
  using M = TypeParam;
  std::vector<std::string> unset;
  collect_unset(Sample<M>::make(), M{}, "", unset);
  EXPECT_TRUE(unset.empty()) << "sample leaves at their default: " << ::testing::PrintToString(unset);
}

TYPED_TEST(MessageTest, NoFieldIsShadowedByTheEnvelope) {
  using M = TypeParam;
  M m = Sample<M>::make();
  KeyCollector keys;
  m.fields(keys);
  for (const auto& k : keys.keys) {
    EXPECT_EQ(std::find(kEnvelopeKeys.begin(), kEnvelopeKeys.end(), k), kEnvelopeKeys.end())
        << "field '" << k << "' has the name of an envelope key";
  }
}

TYPED_TEST(RequestTest, RoundTripsAsRequestAndNotice) {
  using M = TypeParam;
  const M in = Sample<M>::make();
  const uint64_t id = std::numeric_limits<uint64_t>::max() - 3;
  auto req = decode_body(encode_request(in, id));
  ASSERT_TRUE(req.ok()) << req.status().to_string();
  EXPECT_EQ(req->type, M::kType);
  EXPECT_EQ(req->id, id);
  EXPECT_EQ(req->re, 0u);
  EXPECT_FALSE(req->is_reply());
  EXPECT_TRUE(req->error_status().ok());
  expect_same(in, req->template as<M>());

  auto notice = decode_body(encode_notice(in));
  ASSERT_TRUE(notice.ok()) << notice.status().to_string();
  EXPECT_EQ(notice->type, M::kType);
  EXPECT_EQ(notice->id, 0u);
  expect_same(in, notice->template as<M>());
}

// How the broker forwards a request inside a job: under its own id, all else the same.
TYPED_TEST(RequestTest, WithIdRenumbersTheRequest) {
  using M = TypeParam;
  const M in = Sample<M>::make();
  auto req = decode_body(encode_request(in, 5));
  ASSERT_TRUE(req.ok());
  auto fwd = decode_body(with_id(*req, 500));
  ASSERT_TRUE(fwd.ok()) << fwd.status().to_string();
  EXPECT_EQ(fwd->type, M::kType);
  EXPECT_EQ(fwd->id, 500u);
  expect_same(in, fwd->template as<M>());
}

TYPED_TEST(MessageTest, RoundTripsAsReply) {
  using M = TypeParam;
  const M in = Sample<M>::make();
  auto rep = decode_body(encode_reply(42, in));
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_TRUE(rep->is_reply());
  EXPECT_EQ(rep->type, kReplyType);
  EXPECT_EQ(rep->re, 42u);
  EXPECT_EQ(rep->id, 0u);
  EXPECT_TRUE(rep->ok);
  EXPECT_TRUE(rep->error_status().ok());
  expect_same(in, rep->template as<M>());
}

// How the broker passes a reply back to whoever asked: under their id, all else the same.
TYPED_TEST(MessageTest, WithIdRenumbersTheReply) {
  using M = TypeParam;
  const M in = Sample<M>::make();
  auto rep = decode_body(encode_reply(42, in));
  ASSERT_TRUE(rep.ok());
  auto moved = decode_body(with_id(*rep, 4242));
  ASSERT_TRUE(moved.ok()) << moved.status().to_string();
  EXPECT_TRUE(moved->is_reply());
  EXPECT_EQ(moved->re, 4242u);
  EXPECT_EQ(moved->id, 0u);
  EXPECT_TRUE(moved->ok);
  expect_same(in, moved->template as<M>());
}

// The two names that collide most easily: a reply's `ok` and a result that failed.
TEST(ProtocolTest, FailedReceiveResultIsNotReadAsTheEnvelopesOk) {
  RecvResultReply in = Sample<RecvResultReply>::make();
  in.ok = false;
  auto rep = decode_body(encode_reply(3, in));
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->ok);  // the request succeeded: here is the (failed) result
  auto out = rep->as<RecvResultReply>();
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_FALSE(out->ok);
  EXPECT_EQ(out->exit_code, -9);
}

TEST(ProtocolTest, ErrorRepliesCarryCodeAndMessage) {
  for (Code code : {Code::kInvalidArgument, Code::kNotFound, Code::kLockHeld, Code::kDiverged,
                    Code::kTargetNewer, Code::kNoSnapshots, Code::kOutsideRoot, Code::kRefused,
                    Code::kZfsFailed, Code::kIoError, Code::kTimeout, Code::kUnavailable,
                    Code::kProtocol, Code::kCancelled, Code::kInternal}) {
    SCOPED_TRACE(std::string(code_name(code)));
    const std::string msg = "target backup/zones/test is locked by job 7";
    auto e = decode_body(encode_error(99, Status(code, msg)));
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    EXPECT_TRUE(e->is_reply());
    EXPECT_EQ(e->re, 99u);
    EXPECT_FALSE(e->ok);
    EXPECT_EQ(e->err.code, code_name(code));
    EXPECT_EQ(e->error_status().code(), code);
    EXPECT_EQ(e->error_status().message(), msg);
    // Passed along under another id, it is still the same error.
    auto fwd = decode_body(with_id(*e, 7));
    ASSERT_TRUE(fwd.ok());
    EXPECT_EQ(fwd->re, 7u);
    EXPECT_EQ(fwd->error_status().code(), code);
    EXPECT_EQ(fwd->error_status().message(), msg);
  }
}

// However a failed reply is spelled, error_status() is an error: a handler that checks
// it must never go on as if the request had succeeded.
TEST(ProtocolTest, FailedReplyIsNeverAnOkStatus) {
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"encode_error_of_ok", encode_error(5, Status::Ok())},
      {"code_ok", raw([](Packer& pk) {
         pk.pack_map(4);
         pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack(5), pk.pack("ok"), pk.pack(false);
         pk.pack("err"), pk.pack_map(2), pk.pack("code"), pk.pack("ok"), pk.pack("msg"), pk.pack("");
       })},
      {"unknown_code", raw([](Packer& pk) {
         pk.pack_map(4);
         pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack(5), pk.pack("ok"), pk.pack(false);
         pk.pack("err"), pk.pack_map(2), pk.pack("code"), pk.pack("weird"), pk.pack("msg");
         pk.pack("strange");
       })},
      {"no_err", raw([](Packer& pk) {
         pk.pack_map(3);
         pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack(5), pk.pack("ok"), pk.pack(false);
       })},
      {"no_ok", raw([](Packer& pk) {
         pk.pack_map(2);
         pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack(5);
       })},
  };
  for (const auto& [name, body] : cases) {
    SCOPED_TRACE(name);
    auto e = decode_body(body);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    EXPECT_FALSE(e->ok);
    EXPECT_FALSE(e->error_status().ok());
  }
}

TEST(ProtocolTest, WithIdAddsAnIdToANotice) {
  const Heartbeat in = Sample<Heartbeat>::make();
  auto notice = decode_body(encode_notice(in));
  ASSERT_TRUE(notice.ok());
  auto req = decode_body(with_id(*notice, 9));
  ASSERT_TRUE(req.ok()) << req.status().to_string();
  EXPECT_EQ(req->id, 9u);
  EXPECT_EQ(req->type, Heartbeat::kType);
  expect_same(in, req->as<Heartbeat>());
}

TEST(ProtocolTest, WithFieldStampsTheSender) {
  PrepareRequest in = Sample<PrepareRequest>::make();
  in.sender = "forged";  // whatever the sender claims, the broker's stamp wins
  auto e = decode_body(encode_request(in, 17));
  ASSERT_TRUE(e.ok());
  auto stamped = decode_body(with_field(*e, "sender", "node1"));
  ASSERT_TRUE(stamped.ok()) << stamped.status().to_string();
  EXPECT_EQ(stamped->id, 17u);
  in.sender = "node1";
  expect_same(in, stamped->as<PrepareRequest>());
  EXPECT_EQ(stamped->body->get().via.map.size, e->body->get().via.map.size);

  // A key that was absent is added.
  auto without = decode_body(raw([&](Packer& pk) {
    pk.pack_map(3);
    pk.pack("t"), pk.pack("prepare"), pk.pack("id"), pk.pack(18), pk.pack("job"), pk.pack(7);
  }));
  ASSERT_TRUE(without.ok());
  auto added = decode_body(with_field(*without, "sender", "node1"));
  ASSERT_TRUE(added.ok());
  auto got = added->as<PrepareRequest>();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->sender, "node1");
  EXPECT_EQ(got->job, 7u);
  EXPECT_EQ(added->body->get().via.map.size, 4u);

  // A value of another type is replaced too, and then checked like any other.
  auto retyped = decode_body(with_field(*e, "job", "seven"));
  ASSERT_TRUE(retyped.ok());
  auto bad = retyped->as<PrepareRequest>();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("field 'job' should be an unsigned integer"),
            std::string::npos)
      << bad.status().message();
}

// Unknown types are not a decoding matter: the envelope comes through with its type, so
// the broker can answer "unknown message type" to the request's id.
TEST(ProtocolTest, UnknownTypeDecodesWithItsType) {
  auto e = decode_body(raw([](Packer& pk) {
    pk.pack_map(3);
    pk.pack("t"), pk.pack("frobnicate_all"), pk.pack("id"), pk.pack(31), pk.pack("x");
    pk.pack_array(1), pk.pack(1);
  }));
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ(e->type, "frobnicate_all");
  EXPECT_EQ(e->id, 31u);
  EXPECT_FALSE(e->is_reply());
  // Reading it as any known message finds nothing it knows and nothing wrong.
  EXPECT_TRUE(e->as<Empty>().ok());
}

// Neighbouring versions: a newer peer's extra keys are ignored, an older peer's missing
// ones keep their defaults.
TEST(ProtocolTest, ExtraAndMissingKeysAreTolerated) {
  auto e = decode_body(raw([](Packer& pk) {
    pk.pack_map(4);
    pk.pack("t"), pk.pack("hello"), pk.pack("id"), pk.pack(1);
    pk.pack("agent"), pk.pack("node1");
    pk.pack("quantum_caps"), pk.pack_map(1), pk.pack("x"), pk.pack_nil();
  }));
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  auto h = e->as<Hello>();
  ASSERT_TRUE(h.ok()) << h.status().to_string();
  EXPECT_EQ(h->agent, "node1");
  EXPECT_EQ(h->max_recvs, 0u);
  EXPECT_TRUE(h->pools.empty());
}

// ---- Hostile input -----------------------------------------------------------------

template <class M>
Status as_status(const Envelope& e) {
  return e.as<M>().status();
}

struct HostileCase {
  std::string name;
  std::string body;
  std::string want;                           // a substring of the error message
  Status (*read_as)(const Envelope&) = nullptr;  // for a body whose envelope is fine
  std::string sig = std::string(kSignature);
};

std::string valid_hello() { return encode_request(Sample<Hello>::make(), 1); }

// {"t": type, "id": 1, key: <value>}
std::string message_with(const char* type, const char* key,
                         const std::function<void(Packer&)>& value) {
  return raw([&](Packer& pk) {
    pk.pack_map(3);
    pk.pack("t"), pk.pack(type), pk.pack("id"), pk.pack(1);
    pk.pack(key);
    value(pk);
  });
}

// {"t": "reply", "re": 1, "ok": true, key: <value>}
std::string reply_with(const char* key, const std::function<void(Packer&)>& value) {
  return raw([&](Packer& pk) {
    pk.pack_map(4);
    pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack(1), pk.pack("ok"), pk.pack(true);
    pk.pack(key);
    value(pk);
  });
}

std::string with_type(const std::function<void(Packer&)>& t) {
  return raw([&](Packer& pk) {
    pk.pack_map(2);
    pk.pack("t");
    t(pk);
    pk.pack("id"), pk.pack(1);
  });
}

std::vector<HostileCase> hostile_cases() {
  std::vector<HostileCase> c;
  const std::string hello = valid_hello();

  c.push_back({"empty_body", "", "empty message body"});
  for (size_t cut : {size_t{1}, size_t{2}, size_t{3}, hello.size() / 4, hello.size() / 2,
                     hello.size() * 3 / 4, hello.size() - 1}) {
    // A prefix so short that the map header's count alone outruns it is refused as such.
    c.push_back({"truncated_at_" + std::to_string(cut), hello.substr(0, cut),
                 cut <= 3 ? "more than the " + std::to_string(cut) + "-byte input can hold"
                          : "truncated msgpack"});
  }

  c.push_back({"signature_zps2", hello, "bad signature frame", nullptr, "ZPS2"});
  c.push_back({"signature_empty", hello, "bad signature frame", nullptr, ""});
  c.push_back({"signature_zps1x", hello, "bad signature frame", nullptr, "ZPS1x"});
  c.push_back({"signature_lowercase", hello, "bad signature frame", nullptr, "zps1"});
  c.push_back({"signature_is_the_body", hello, "bad signature frame", nullptr, hello});

  const std::string not_a_map = "field 'message' should be a map but is ";
  c.push_back({"body_array", raw([](Packer& pk) { pk.pack_array(1), pk.pack("t"); }),
               not_a_map + "an array"});
  c.push_back({"body_string", raw([](Packer& pk) { pk.pack("hello"); }), not_a_map + "a string"});
  c.push_back({"body_int", raw([](Packer& pk) { pk.pack(7); }), not_a_map + "an unsigned integer"});
  c.push_back({"body_negative", raw([](Packer& pk) { pk.pack(-7); }),
               not_a_map + "a negative integer"});
  c.push_back({"body_nil", raw([](Packer& pk) { pk.pack_nil(); }), not_a_map + "nil"});
  c.push_back({"body_float", raw([](Packer& pk) { pk.pack_double(0.25); }), not_a_map + "a float"});
  c.push_back({"body_ext", raw([](Packer& pk) { pk.pack_ext(4, 1), pk.pack_ext_body("ZPS1", 4); }),
               not_a_map + "an extension"});

  c.push_back({"no_type", raw([](Packer& pk) { pk.pack_map(1), pk.pack("id"), pk.pack(1); }),
               "no valid type field 't'"});
  c.push_back({"empty_map", "\x80", "no valid type field 't'"});
  c.push_back({"type_int", with_type([](Packer& pk) { pk.pack(5); }),
               "field 't' should be a string but is an unsigned integer"});
  c.push_back({"type_binary", with_type([](Packer& pk) { pk.pack_bin(5), pk.pack_bin_body("hello", 5); }),
               "field 't' should be a string but is binary"});
  c.push_back({"type_ext", with_type([](Packer& pk) { pk.pack_ext(5, 3), pk.pack_ext_body("hello", 5); }),
               "field 't' should be a string but is an extension"});
  c.push_back({"type_nil", with_type([](Packer& pk) { pk.pack_nil(); }),
               "field 't' should be a string but is nil"});
  for (const auto& [name, t] : std::vector<std::pair<std::string, std::string>>{
           {"type_empty", ""},
           {"type_upper", "Hello"},
           {"type_space", "he llo"},
           {"type_nul", std::string("hel\0lo", 6)},
           {"type_path", "../hello"},
           {"type_utf8", "h\xc3\xa9llo"},
           {"type_too_long", std::string(33, 'a')}}) {
    c.push_back({name, with_type([&](Packer& pk) { pk.pack(t); }), "no valid type field 't'"});
  }

  c.push_back({"map32_of_4g_entries", "\xdf\xff\xff\xff\xff",
               "map declares 4294967295 entries, more than the 5-byte input can hold"});
  c.push_back({"array32_of_4g_elements", "\xdd\xff\xff\xff\xff",
               "array declares 4294967295 elements"});
  c.push_back({"str32_of_4g", "\xdb\xff\xff\xff\xff", "truncated msgpack"});
  c.push_back({"bin32_of_4g", "\xc6\xff\xff\xff\xff", "truncated msgpack"});
  c.push_back({"ext32_of_4g", "\xc9\xff\xff\xff\xff\x07", "truncated msgpack"});
  // The same lies inside an otherwise ordinary hello.
  c.push_back({"field_map32_of_4g", message_with("hello", "caps", [](Packer& pk) {
                 pk.pack_map(0xffffffffu);
               }),
               "map declares 4294967295 entries"});
  c.push_back({"field_array32_of_4g", message_with("hello", "recv_roots", [](Packer& pk) {
                 pk.pack_array(0xffffffffu);
               }),
               "array declares 4294967295 elements"});
  c.push_back({"field_str32_of_4g", message_with("hello", "agent", [](Packer& pk) {
                 pk.pack_str(0xffffffffu);
               }),
               "truncated msgpack"});
  c.push_back({"field_bin32_of_4g", message_with("hello", "agent", [](Packer& pk) {
                 pk.pack_bin(0xffffffffu);
               }),
               "truncated msgpack"});
  c.push_back({"long_string", message_with("hello", "agent", [](Packer& pk) {
                 const std::string big(2 << 20, 'a');
                 pk.pack(big);
               }),
               "string of 2097152 bytes exceeds the limit"});
  c.push_back({"long_binary", message_with("hello", "agent", [](Packer& pk) {
                 const std::string big(2 << 20, 'b');
                 pk.pack_bin(big.size()), pk.pack_bin_body(big.data(), big.size());
               }),
               "binary of 2097152 bytes exceeds the limit"});

  c.push_back({"deep_arrays", message_with("hello", "x", [](Packer& pk) {
                 for (int i = 0; i < 1000; ++i) pk.pack_array(1);
                 pk.pack_nil();
               }),
               "nesting deeper than 12 levels"});
  c.push_back({"deep_maps", message_with("hello", "x", [](Packer& pk) {
                 for (int i = 0; i < 1000; ++i) pk.pack_map(1), pk.pack("k");
                 pk.pack_nil();
               }),
               "nesting deeper than 12 levels"});
  c.push_back({"deep_bare_arrays", repeat("\x91", 1000) + "\xc0", "nesting deeper than 12 levels"});

  c.push_back({"map_of_100k_entries", raw([](Packer& pk) {
                 pk.pack_map(100000);
                 pk.pack("t"), pk.pack("hello");
                 for (int i = 1; i < 100000; ++i) pk.pack(i), pk.pack_nil();
               }),
               "message has 100000 keys, more than the limit of 256"});
  c.push_back({"nested_map_of_100k_entries", message_with("hello", "caps", [](Packer& pk) {
                 pk.pack_map(100000);
                 for (int i = 0; i < 100000; ++i) pk.pack(i), pk.pack_nil();
               }),
               "caps has 100000 keys, more than the limit of 256", &as_status<Hello>});
  c.push_back({"too_many_elements", message_with("hello", "x", [](Packer& pk) {
                 pk.pack_array(1100000);
                 for (int i = 0; i < 1100000; ++i) pk.pack_nil();
               }),
               "array declares 1100000 elements, more than the limit of 1048576 elements"});
  // One byte per element on the wire, a whole struct each in memory.
  c.push_back({"jobs_reply_of_1m_empty_maps", reply_with("jobs", [](Packer& pk) {
                 pk.pack_array(1000000);
                 for (int i = 0; i < 1000000; ++i) pk.pack_map(0);
               }),
               "field 'jobs' has 1000000 elements, more than fit in the " +
                   std::to_string(wire::kMaxDecodedBytes >> 20) + " MiB",
               &as_status<JobsReply>});
  c.push_back({"agents_reply_of_1m_empty_maps", reply_with("agents", [](Packer& pk) {
                 pk.pack_array(1000000);
                 for (int i = 0; i < 1000000; ++i) pk.pack_map(0);
               }),
               "field 'agents' has 1000000 elements, more than fit in the " +
                   std::to_string(wire::kMaxDecodedBytes >> 20) + " MiB",
               &as_status<AgentsReply>});

  // Wrong field types, named by their path.
  const auto hello_field = [&](const char* name, const char* key, std::function<void(Packer&)> v,
                               const char* want) {
    c.push_back({name, message_with("hello", key, v), want, &as_status<Hello>});
  };
  hello_field("hello_agent_int", "agent", [](Packer& pk) { pk.pack(7); },
              "field 'agent' should be a string but is an unsigned integer");
  hello_field("hello_agent_ext", "agent", [](Packer& pk) { pk.pack_ext(1, 9), pk.pack_ext_body("x", 1); },
              "field 'agent' should be a string but is an extension");
  hello_field("hello_recv_roots_string", "recv_roots", [](Packer& pk) { pk.pack("backup"); },
              "field 'recv_roots' should be an array but is a string");
  hello_field("hello_recv_roots_nested", "recv_roots",
              [](Packer& pk) { pk.pack_array(1), pk.pack_array(0); },
              "field 'recv_roots[0]' should be a string but is an array");
  hello_field("hello_pools_ints", "pools", [](Packer& pk) { pk.pack_array(2), pk.pack(1), pk.pack(2); },
              "field 'pools[0]' should be a map but is an unsigned integer");
  hello_field("hello_pool_free_string", "pools",
              [](Packer& pk) {
                pk.pack_array(1), pk.pack_map(2);
                pk.pack("name"), pk.pack("tank"), pk.pack("free"), pk.pack("lots");
              },
              "field 'pools[0].free' should be an unsigned integer but is a string");
  hello_field("hello_max_recvs_negative", "max_recvs", [](Packer& pk) { pk.pack(-1); },
              "field 'max_recvs' should be an unsigned integer but is a negative integer");
  hello_field("hello_max_recvs_2_40", "max_recvs", [](Packer& pk) { pk.pack(uint64_t{1} << 40); },
              "field 'max_recvs' is out of range");
  hello_field("hello_max_recvs_float", "max_recvs", [](Packer& pk) { pk.pack_double(4.5); },
              "field 'max_recvs' should be an unsigned integer but is a float");
  hello_field("hello_max_recvs_bool", "max_recvs", [](Packer& pk) { pk.pack(true); },
              "field 'max_recvs' should be an unsigned integer but is a boolean");
  hello_field("hello_caps_string", "caps", [](Packer& pk) { pk.pack("all"); },
              "field 'caps' should be a map but is a string");
  hello_field("hello_caps_holds_int", "caps",
              [](Packer& pk) { pk.pack_map(1), pk.pack("holds"), pk.pack(1); },
              "field 'caps.holds' should be a boolean but is an unsigned integer");
  hello_field("hello_load_recv_job_negative", "load",
              [](Packer& pk) {
                pk.pack_map(1), pk.pack("recvs"), pk.pack_array(1);
                pk.pack_map(1), pk.pack("job"), pk.pack(-1);
              },
              "field 'load.recvs[0].job' should be an unsigned integer but is a negative integer");
  hello_field("hello_load_active_recvs_2_33", "load",
              [](Packer& pk) { pk.pack_map(1), pk.pack("active_recvs"), pk.pack(uint64_t{1} << 33); },
              "field 'load.active_recvs' is out of range");

  c.push_back({"jobs_all_int", message_with("jobs", "all", [](Packer& pk) { pk.pack(1); }),
               "field 'all' should be a boolean but is an unsigned integer", &as_status<JobsRequest>});
  c.push_back({"job_event_rate_string", message_with("job_event", "rate", [](Packer& pk) { pk.pack("fast"); }),
               "field 'rate' should be a number but is a string", &as_status<JobEvent>});
  c.push_back({"job_event_state_hops_float", message_with("job_event", "state", [](Packer& pk) {
                 pk.pack_map(1), pk.pack("hops"), pk.pack_array(1);
                 pk.pack_map(1), pk.pack("n"), pk.pack_double(1.5);
               }),
               "field 'state.hops[0].n' should be an unsigned integer but is a float",
               &as_status<JobEvent>});
  c.push_back({"recv_result_exit_code_2_40", reply_with("exit_code", [](Packer& pk) {
                 pk.pack(uint64_t{1} << 40);
               }),
               "field 'exit_code' is out of range", &as_status<RecvResultReply>});
  c.push_back({"recv_result_exit_code_float", reply_with("exit_code", [](Packer& pk) {
                 pk.pack_float(1.5f);
               }),
               "field 'exit_code' should be an integer but is a float", &as_status<RecvResultReply>});
  c.push_back({"snapshots_guid_float", reply_with("snapshots", [](Packer& pk) {
                 pk.pack_array(1), pk.pack_map(1), pk.pack("guid"), pk.pack_double(0.5);
               }),
               "field 'snapshots[0].guid' should be an unsigned integer but is a float",
               &as_status<SnapshotsReply>});
  c.push_back({"prepare_fence_negative", message_with("prepare", "fence", [](Packer& pk) { pk.pack(-41); }),
               "field 'fence' should be an unsigned integer but is a negative integer",
               &as_status<PrepareRequest>});

  // The envelope's own keys.
  c.push_back({"id_negative", raw([](Packer& pk) {
                 pk.pack_map(2), pk.pack("t"), pk.pack("job"), pk.pack("id"), pk.pack(-1);
               }),
               "field 'id' should be an unsigned integer but is a negative integer"});
  c.push_back({"id_float", raw([](Packer& pk) {
                 pk.pack_map(2), pk.pack("t"), pk.pack("job"), pk.pack("id"), pk.pack_double(1.5);
               }),
               "field 'id' should be an unsigned integer but is a float"});
  c.push_back({"reply_without_re", raw([](Packer& pk) {
                 pk.pack_map(2), pk.pack("t"), pk.pack("reply"), pk.pack("ok"), pk.pack(true);
               }),
               "reply without 're'"});
  c.push_back({"reply_re_zero", raw([](Packer& pk) {
                 pk.pack_map(3), pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack(0);
                 pk.pack("ok"), pk.pack(true);
               }),
               "reply without 're'"});
  c.push_back({"reply_re_string", raw([](Packer& pk) {
                 pk.pack_map(2), pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack("1");
               }),
               "field 're' should be an unsigned integer but is a string"});
  c.push_back({"reply_ok_int", raw([](Packer& pk) {
                 pk.pack_map(3), pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack(1);
                 pk.pack("ok"), pk.pack(1);
               }),
               "field 'ok' should be a boolean but is an unsigned integer"});
  c.push_back({"reply_err_string", raw([](Packer& pk) {
                 pk.pack_map(4), pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack(1);
                 pk.pack("ok"), pk.pack(false), pk.pack("err"), pk.pack("boom");
               }),
               "field 'err' should be a map but is a string"});
  c.push_back({"reply_err_code_int", raw([](Packer& pk) {
                 pk.pack_map(4), pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack(1);
                 pk.pack("ok"), pk.pack(false), pk.pack("err"), pk.pack_map(1);
                 pk.pack("code"), pk.pack(13);
               }),
               "field 'err.code' should be a string but is an unsigned integer"});

  c.push_back({"oversized_body", message_with("hello", "pad", [](Packer& pk) {
                 pk.pack_array(wire::kMaxMessageBytes);
                 for (size_t i = 0; i < wire::kMaxMessageBytes; ++i) pk.pack_nil();
               }),
               "exceeds the limit of 8388608"});
  c.push_back({"trailing_garbage", hello + std::string("\x00garbage", 8),
               "trailing 8 bytes after the msgpack value"});
  c.push_back({"two_messages_in_one_frame", hello + hello, "trailing"});
  std::string reserved = message_with("hello", "agent", [](Packer& pk) { pk.pack_nil(); });
  reserved.back() = '\xc1';  // the one byte msgpack never uses
  c.push_back({"reserved_byte", reserved, "malformed msgpack"});
  return c;
}

void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.name; }

class HostileInputTest : public ::testing::TestWithParam<HostileCase> {};

TEST_P(HostileInputTest, IsAnErrorValueInBoundedMemory) {
  const HostileCase& c = GetParam();
  Status s;
  int64_t peak = 0;
  {
    alloc_meter::PeakScope scope;
    ASSERT_NO_THROW({
      auto e = decode(c.sig.data(), c.sig.size(), c.body.data(), c.body.size());
      s = e.status();
      if (e.ok()) {
        ASSERT_NE(c.read_as, nullptr) << "decoded, type '" << e->type << "'";
        s = c.read_as(*e);
      }
    });
    peak = scope.peak_growth();
  }
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kProtocol) << s.to_string();
  EXPECT_NE(s.message().find(c.want), std::string::npos)
      << "message: " << s.message() << "\nwanted: " << c.want;
  if (alloc_meter::enabled()) {
    EXPECT_LT(peak, kMemoryBound);
  }
  RecordProperty("peak_bytes", std::to_string(peak));
  std::printf("[ peak     ] %-36s %8zu-byte body: %10lld bytes\n", c.name.c_str(), c.body.size(),
              static_cast<long long>(peak));
}

INSTANTIATE_TEST_SUITE_P(Table, HostileInputTest, ::testing::ValuesIn(hostile_cases()),
                         [](const auto& info) { return info.param.name; });

// The most memory a message can cost that is accepted: as many one-byte jobs as the
// decoded-size budget allows, and the rest of the element limit spent on a padding array
// that only the msgpack tree holds.
TEST(ProtocolMemoryTest, LargestAcceptedMessageStaysBounded) {
  const size_t jobs = wire::kMaxDecodedBytes / sizeof(JobInfo);
  const size_t pad = wire::kMaxElements - jobs - 16;
  const std::string body = raw([&](Packer& pk) {
    pk.pack_map(5);
    pk.pack("t"), pk.pack("reply"), pk.pack("re"), pk.pack(1), pk.pack("ok"), pk.pack(true);
    pk.pack("jobs"), pk.pack_array(static_cast<uint32_t>(jobs));
    for (size_t i = 0; i < jobs; ++i) pk.pack_map(0);
    pk.pack("pad"), pk.pack_array(static_cast<uint32_t>(pad));
    for (size_t i = 0; i < pad; ++i) pk.pack_nil();
  });
  int64_t peak = 0;
  {
    alloc_meter::PeakScope scope;
    auto e = decode_body(body);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    auto r = e->as<JobsReply>();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->jobs.size(), jobs);
    peak = scope.peak_growth();
  }
  if (alloc_meter::enabled()) {
    EXPECT_LT(peak, kMemoryBound);
  }
  std::printf("largest accepted: %zu jobs + %zu padding in %zu bytes; peak %.1f MiB\n", jobs,
              pad, body.size(), static_cast<double>(peak) / 1048576.0);
}

// ---- Fuzz-ish loops ----------------------------------------------------------------

template <class... Ms>
void read_as_every(const Envelope& e) {
  (static_cast<void>(e.as<Ms>()), ...);
}

// Whatever decode accepts, every accessor must handle without crashing.
void exercise(const std::string& sig, const std::string& body, size_t& accepted) {
  auto e = decode(sig.data(), sig.size(), body.data(), body.size());
  if (!e.ok()) {
    EXPECT_EQ(e.status().code(), Code::kProtocol);
    return;
  }
  ++accepted;
  read_as_every<Hello, HelloReply, Heartbeat, AgentsReply, SnapshotsRequest, SnapshotsReply,
                ReplicateRequest, JobReply, JobsRequest, JobsReply, JobRequest, LocksReply,
                JobEvent, JobStart, JobUpdate, JobEnd, TargetStateRequest, TargetStateReply,
                PrepareRequest, PrepareReply, RecvResultReply, AbortRequest, Empty>(*e);
  static_cast<void>(e->error_status());
  auto moved = decode_body(with_id(*e, 12345));
  EXPECT_TRUE(moved.ok()) << "with_id broke an accepted message: " << moved.status().to_string();
  auto stamped = decode_body(with_field(*e, "sender", "node1"));
  EXPECT_TRUE(stamped.ok()) << stamped.status().to_string();
}

std::vector<std::string> valid_bodies() {
  std::vector<std::string> out;
  out.push_back(encode_request(Sample<Hello>::make(), 1));
  out.push_back(encode_notice(Sample<Heartbeat>::make()));
  out.push_back(encode_reply(2, Sample<AgentsReply>::make()));
  out.push_back(encode_reply(3, Sample<SnapshotsReply>::make()));
  out.push_back(encode_reply(4, Sample<JobsReply>::make()));
  out.push_back(encode_notice(Sample<JobEvent>::make()));
  out.push_back(encode_request(Sample<PrepareRequest>::make(), 5));
  out.push_back(encode_reply(6, Sample<RecvResultReply>::make()));
  out.push_back(encode_reply(7, Sample<TargetStateReply>::make()));
  out.push_back(encode_error(8, Status(Code::kLockHeld, "locked")));
  out.push_back(encode_request(Sample<ReplicateRequest>::make(), 9));
  return out;
}

TEST(ProtocolFuzzTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<int> byte(0, 255);
  size_t accepted = 0;
  int64_t peak = 0;
  {
    alloc_meter::PeakScope scope;
    for (int i = 0; i < 10000; ++i) {
      std::string body(rng() % 300, '\0');
      for (auto& ch : body) ch = static_cast<char>(byte(rng));
      // Half of them start like a map, so they get past the first byte.
      if (!body.empty() && i % 2 == 0) body[0] = static_cast<char>(0x80 | (rng() % 16));
      ASSERT_NO_THROW(exercise(std::string(kSignature), body, accepted)) << "input " << i;
    }
    peak = scope.peak_growth();
  }
  if (alloc_meter::enabled()) {
    EXPECT_LT(peak, kMemoryBound);
  }
  std::printf("random bytes: %zu of 10000 decoded; peak %lld bytes\n", accepted,
              static_cast<long long>(peak));
}

TEST(ProtocolFuzzTest, MutatedMessagesNeverCrash) {
  static constexpr unsigned char kInteresting[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xc0,
                                                   0xc1, 0xc2, 0xc4, 0xc6, 0xc9, 0xca, 0xcb,
                                                   0xcf, 0xd3, 0xd9, 0xdb, 0xdc, 0xdd, 0xde,
                                                   0xdf, 0xe0, 0xff};
  const std::vector<std::string> seeds = valid_bodies();
  std::mt19937_64 rng(4242);
  size_t accepted = 0;
  int64_t peak = 0;
  {
    alloc_meter::PeakScope scope;
    for (int i = 0; i < 10000; ++i) {
      std::string body = seeds[rng() % seeds.size()];
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < edits && !body.empty(); ++k) {
        const size_t at = rng() % body.size();
        switch (rng() % 7) {
          case 0: body[at] = static_cast<char>(body[at] ^ (1 << (rng() % 8))); break;
          case 1: body[at] = static_cast<char>(rng()); break;
          case 2: body[at] = static_cast<char>(kInteresting[rng() % sizeof(kInteresting)]); break;
          case 3: body.insert(at, 1 + rng() % 8, static_cast<char>(rng())); break;
          case 4: body.erase(at, 1 + rng() % 8); break;
          case 5: body.resize(at); break;
          case 6: {
            // A run of 0xff after a length byte makes a 32-bit length of 4 GiB.
            body.replace(at, std::min<size_t>(4, body.size() - at), "\xff\xff\xff\xff");
            break;
          }
        }
      }
      ASSERT_NO_THROW(exercise(std::string(kSignature), body, accepted)) << "mutation " << i;
    }
    peak = scope.peak_growth();
  }
  if (alloc_meter::enabled()) {
    EXPECT_LT(peak, kMemoryBound);
  }
  std::printf("mutations: %zu of 10000 decoded; peak %lld bytes\n", accepted,
              static_cast<long long>(peak));
}

// Random msgpack trees keyed by the protocol's own field names, so that most of them get
// past the envelope and the Reader meets wrong types deep inside familiar shapes.
class TreeGen {
 public:
  explicit TreeGen(uint64_t seed) : rng_(seed) {}

  std::string message() {
    return raw([&](Packer& pk) {
      const size_t n = rng_() % 7;
      pk.pack_map(static_cast<uint32_t>(n + 1));
      pk.pack("t");
      if (rng_() % 16 == 0) {
        value(pk, 1);
      } else {
        pk.pack(kTypes[rng_() % std::size(kTypes)]);
      }
      for (size_t i = 0; i < n; ++i) {
        pk.pack(key());
        value(pk, 1);
      }
    });
  }

 private:
  static constexpr const char* kTypes[] = {
      "hello",     "heartbeat", "reregister", "agents",    "snapshots",    "replicate",
      "jobs",      "job",       "watch",      "cancel",    "locks",        "job_event",
      "job_start", "job_cancel", "job_update", "job_end", "target_state", "prepare",
      "recv_result", "abort",   "reply",      "reply",     "reply",        "unknown_kind"};
  static constexpr const char* kKeys[] = {
      "t", "id", "re", "ok", "err", "code", "msg", "agent", "host", "version", "data_address",
      "recv_roots", "pools", "name", "free", "max_recvs", "caps", "holds", "load", "recvs",
      "jobs", "job", "dataset", "fence", "agents", "snapshots", "guid", "createtxg", "hops",
      "n", "from", "to", "bytes", "state", "seconds", "error", "warnings", "rate", "kind",
      "exit_code", "succeeded", "session", "sender", "snapshot", "endpoint", "token",
      "exists", "origin_present", "all", "locks", "recursive", "force", "alive"};

  const char* key() { return kKeys[rng_() % std::size(kKeys)]; }

  void value(Packer& pk, int depth) {
    switch (rng_() % (depth < 5 ? 12 : 9)) {
      case 0: pk.pack_nil(); break;
      case 1: pk.pack(rng_() % 2 == 0); break;
      case 2: pk.pack(static_cast<uint64_t>(rng_() >> (rng_() % 64))); break;
      case 3: pk.pack(-static_cast<int64_t>(rng_() >> (1 + rng_() % 63))); break;
      case 4: pk.pack_double(static_cast<double>(rng_() % 1000) / 7.0); break;
      case 5: pk.pack(std::string(rng_() % 40, 'x')); break;
      case 6: pk.pack(key()); break;
      case 7: pk.pack_bin(3), pk.pack_bin_body("abc", 3); break;
      case 8: pk.pack_ext(2, static_cast<int8_t>(rng_() % 8)), pk.pack_ext_body("zz", 2); break;
      case 9:
      case 10: {
        const uint32_t n = static_cast<uint32_t>(rng_() % 5);
        pk.pack_array(n);
        for (uint32_t i = 0; i < n; ++i) value(pk, depth + 1);
        break;
      }
      case 11: {
        const uint32_t n = static_cast<uint32_t>(rng_() % 5);
        pk.pack_map(n);
        for (uint32_t i = 0; i < n; ++i) {
          pk.pack(key());
          value(pk, depth + 1);
        }
        break;
      }
    }
  }

  std::mt19937_64 rng_;
};

TEST(ProtocolFuzzTest, RandomTreesOfKnownKeysNeverCrash) {
  TreeGen gen(777);
  size_t accepted = 0;
  int64_t peak = 0;
  {
    alloc_meter::PeakScope scope;
    for (int i = 0; i < 10000; ++i) {
      const std::string body = gen.message();
      ASSERT_NO_THROW(exercise(std::string(kSignature), body, accepted)) << "tree " << i;
    }
    peak = scope.peak_growth();
  }
  if (alloc_meter::enabled()) {
    EXPECT_LT(peak, kMemoryBound);
  }
  std::printf("random trees: %zu of 10000 decoded; peak %lld bytes\n", accepted,
              static_cast<long long>(peak));
}

}  // namespace
}  // namespace zps::proto
