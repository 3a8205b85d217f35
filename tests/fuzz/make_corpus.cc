// Writes the fuzzers' seed corpora and the control dictionary:
//   make_corpus DIR   ->  DIR/corpus/control/*, DIR/corpus/pipe/*, DIR/control.dict
// (`cmake --build build-fuzz --target fuzz_corpus` runs it on tests/fuzz/). The output
// is deterministic, so regenerating it after a protocol change shows up as a plain diff.
//
// Control seeds: a request (or notice) of every message type, a reply of every reply
// type, failed replies, a forwarded message, and a few at the decoder's limits; every
// field holds a value, so the fuzzer starts from complete messages. Pipe seeds: single
// frames of each kind and short streams, good and broken.
#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <typeinfo>
#include <vector>

#include "shared/pipe.h"
#include "shared/protocol.h"
#include "tests/fuzz/inputs.h"

namespace zps::fuzz {
namespace {

namespace fs = std::filesystem;

// Gives every field of a message a distinct, plausible value; vectors get two elements.
class Filler {
 public:
  template <class T>
  void operator()(const char* key, T& v) {
    fill(key, v);
  }

 private:
  void fill(const char* key, std::string& s) { s = std::string(key) + "-" + std::to_string(++n_); }
  void fill(const char*, bool& b) { b = true; }
  void fill(const char*, double& d) { d = 1.5 * ++n_; }
  template <class T>
    requires std::is_integral_v<T>
  void fill(const char*, T& v) {
    v = static_cast<T>(++n_);
  }
  template <class T>
  void fill(const char* key, std::vector<T>& v) {
    v.resize(2);
    for (auto& e : v) fill(key, e);
  }
  template <class T>
  void fill(const char* key, std::optional<T>& v) {
    fill(key, v.emplace());
  }
  template <wire::HasFields T>
  void fill(const char*, T& v) {
    v.fields(*this);
  }

  int n_ = 0;
};

// Collects every key of a message, nested ones included.
class KeyCollector {
 public:
  explicit KeyCollector(std::set<std::string>& keys) : keys_(keys) {}
  template <class T>
  void operator()(const char* key, T& v) {
    keys_.insert(key);
    visit(v);
  }

 private:
  template <class T>
  void visit(T&) {}
  template <class T>
  void visit(std::vector<T>&) {
    T e{};
    visit(e);
  }
  template <class T>
  void visit(std::optional<T>&) {
    T e{};
    visit(e);
  }
  template <wire::HasFields T>
  void visit(T& v) {
    v.fields(*this);
  }

  std::set<std::string>& keys_;
};

template <class M>
M filled() {
  M m{};
  Filler f;
  m.fields(f);
  return m;
}

class Corpus {
 public:
  explicit Corpus(fs::path dir) : dir_(std::move(dir)) { fs::create_directories(dir_); }

  void add(const std::string& name, const std::string& bytes) {
    if (!names_.insert(name).second) {
      std::fprintf(stderr, "make_corpus: two seeds named %s\n", name.c_str());
      std::exit(1);
    }
    std::ofstream out(dir_ / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "make_corpus: cannot write %s\n", (dir_ / name).c_str());
      std::exit(1);
    }
  }

 private:
  fs::path dir_;
  std::set<std::string> names_;
};

// ---- Control -------------------------------------------------------------------------

// A control seed. Every one must decode (the foreign signature aside), or the fuzzer
// would start from the decoder's first refusal instead of from whole messages.
std::string control(const std::string& body, unsigned char selector = 0) {
  auto e = proto::decode(proto::kSignature.data(), proto::kSignature.size(), body.data(),
                         body.size());
  if (!e.ok()) {
    std::fprintf(stderr, "make_corpus: a seed does not decode: %s\n",
                 e.status().to_string().c_str());
    std::exit(1);
  }
  return std::string(1, static_cast<char>(selector)) + body;
}

class ControlSeeds {
 public:
  explicit ControlSeeds(Corpus& corpus) : corpus_(corpus) {}

  template <class M>
  void request(bool notice = false) {
    seeded_.insert(typeid(M).name());
    const std::string type(M::kType);
    if (notice) {
      corpus_.add("notice_" + type, control(proto::encode_notice(filled<M>())));
    } else {
      const uint64_t id = ++id_;
      corpus_.add("request_" + type, control(proto::encode_request(filled<M>(), id), id & 0x7f));
    }
  }

  template <class M>
  void reply(const std::string& name) {
    seeded_.insert(typeid(M).name());
    const uint64_t re = ++id_;
    corpus_.add("reply_" + name, control(proto::encode_reply(re, filled<M>()), re & 0x7f));
  }

  template <class... Ms>
  void check_covers(TypeList<Ms...>) const {
    for (const char* name : {typeid(Ms).name()...}) {
      if (!seeded_.contains(name)) {
        std::fprintf(stderr, "make_corpus: no seed for catalogue type %s\n", name);
        std::exit(1);
      }
    }
  }

 private:
  Corpus& corpus_;
  std::set<std::string> seeded_;
  uint64_t id_ = 0;
};

// A raw msgpack body, for shapes the encoders never make.
template <class F>
std::string raw(F&& pack) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pack(pk);
  return std::string(buf.data(), buf.size());
}

void control_seeds(const fs::path& dir) {
  Corpus corpus(dir / "corpus" / "control");
  ControlSeeds seeds(corpus);
  using namespace proto;

  seeds.request<Hello>();
  seeds.request<Heartbeat>(true);
  seeds.request<Reregister>(true);
  seeds.request<AgentsRequest>();
  seeds.request<SnapshotsRequest>();
  seeds.request<ReplicateRequest>();
  seeds.request<JobsRequest>();
  seeds.request<JobRequest>();
  seeds.request<WatchRequest>();
  seeds.request<CancelRequest>();
  seeds.request<LocksRequest>();
  seeds.request<JobEvent>(true);
  seeds.request<JobStart>();
  seeds.request<JobCancel>();
  seeds.request<JobUpdate>(true);
  seeds.request<JobEnd>();
  seeds.request<TargetStateRequest>();
  seeds.request<PrepareRequest>();
  seeds.request<RecvResultRequest>();
  seeds.request<AbortRequest>();

  seeds.reply<HelloReply>("hello");
  seeds.reply<AgentsReply>("agents");
  seeds.reply<SnapshotsReply>("snapshots");
  seeds.reply<JobReply>("job");
  seeds.reply<JobsReply>("jobs");
  seeds.reply<LocksReply>("locks");
  seeds.reply<TargetStateReply>("target_state");
  seeds.reply<PrepareReply>("prepare");
  seeds.reply<RecvResultReply>("recv_result");
  seeds.reply<Empty>("empty");
  seeds.reply<WireError>("wire_error");  // an ok reply that happens to carry err's keys
  seeds.check_covers(Catalogue{});

  corpus.add("error_lock_held",
             control(encode_error(90, Status(Code::kLockHeld, "held by job 3"))));
  corpus.add("error_protocol", control(encode_error(91, Status(Code::kProtocol, "bad"))));
  corpus.add("error_unknown_code", control(raw([](auto& pk) {
               pk.pack_map(4);
               pk.pack("t"), pk.pack("reply");
               pk.pack("re"), pk.pack(92);
               pk.pack("ok"), pk.pack(false);
               pk.pack("err"), pk.pack_map(2), pk.pack("code"), pk.pack("no_such_code"),
                   pk.pack("msg"), pk.pack("?");
             })));
  corpus.add("error_without_detail", control(raw([](auto& pk) {
               pk.pack_map(2);
               pk.pack("t"), pk.pack("reply");
               pk.pack("re"), pk.pack(93);
             })));

  // What the broker forwards: a prepare under its own id with `sender` stamped.
  {
    std::string body = encode_request(filled<PrepareRequest>(), 94);
    auto e = decode(kSignature.data(), kSignature.size(), body.data(), body.size());
    if (!e.ok()) {
      std::fprintf(stderr, "make_corpus: %s\n", e.status().to_string().c_str());
      std::exit(1);
    }
    corpus.add("forwarded_prepare", control(with_field(*e, "sender", "node1"), 1));
  }

  // At the limits: prepare notices with as many keys as a map may have (forwarding has
  // to add `id` and `sender`) and one fewer, nesting as deep as allowed, wrong types in
  // familiar places, and a foreign signature.
  auto wide = [](size_t keys) {
    return raw([keys](auto& pk) {
      pk.pack_map(static_cast<uint32_t>(keys));
      pk.pack("t"), pk.pack("prepare");
      for (size_t i = 1; i < keys; ++i) pk.pack(std::to_string(i)), pk.pack_nil();
    });
  };
  corpus.add("limit_keys", control(wide(wire::kMaxMapEntries)));
  corpus.add("limit_keys_minus_one", control(wide(wire::kMaxMapEntries - 1)));
  corpus.add("limit_depth", control(raw([](auto& pk) {
               pk.pack_map(2);
               pk.pack("t"), pk.pack("hello");
               pk.pack("load");
               for (size_t d = 2; d < wire::kMaxDepth; ++d) pk.pack_map(1), pk.pack("recvs");
               pk.pack_array(0);
             })));
  corpus.add("wrong_types", control(raw([](auto& pk) {
               pk.pack_map(5);
               pk.pack("t"), pk.pack("job_update");
               pk.pack("id"), pk.pack(7);
               pk.pack("job"), pk.pack(-1);
               pk.pack("rate"), pk.pack("fast");
               pk.pack("hop"), pk.pack(uint64_t{1} << 40);
             })));
  corpus.add("foreign_signature",
             control(encode_request(JobsRequest{}, 95), kForeignSignature | 4));
}

void control_dict(const fs::path& dir) {
  std::set<std::string> keys = {"t", "id", "re", "ok", "err"};
  std::set<std::string> types = {std::string(proto::kReplyType)};
  [&]<class... Ms>(TypeList<Ms...>) {
    auto collect = [&]<class M>(M m) {
      KeyCollector c(keys);
      m.fields(c);
      if constexpr (requires { M::kType; }) types.insert(std::string(M::kType));
    };
    (collect(Ms{}), ...);
  }(Catalogue{});
  for (Code c = Code::kOk; c <= Code::kInternal; c = static_cast<Code>(static_cast<int>(c) + 1)) {
    types.insert(std::string(code_name(c)));
  }

  // As msgpack strings (what the fuzzer meets in the bytes), with their fixstr header.
  auto entry = [](const std::string& s) {
    std::string out = "\"";
    char hex[8];
    std::snprintf(hex, sizeof hex, "\\x%02x", 0xa0 | static_cast<unsigned>(s.size()));
    out += hex;
    out += s + "\"";
    return out;
  };
  std::ofstream out(dir / "control.dict", std::ios::trunc);
  out << "# Generated by tests/fuzz/make_corpus.cc: every key, message type and error code\n"
         "# of shared/protocol.h as a msgpack string.\n";
  for (const auto& k : keys) out << "key_" << k << "=" << entry(k) << "\n";
  for (const auto& t : types) out << "name_" << t << "=" << entry(t) << "\n";
  out << "sig=\"ZPS1\"\n";
}

// ---- Pipe ----------------------------------------------------------------------------

std::string frame(pipe::FrameKind kind, uint64_t seq, std::string_view payload,
                  std::string_view token = kToken) {
  std::string f(pipe::kHeaderBytes, '\0');
  pipe::write_header(f.data(), kind, token, seq);
  return f.append(payload);
}

std::string final_frame(uint64_t seq, uint64_t bytes, uint64_t hash) {
  std::string payload(16, '\0');
  for (int i = 0; i < 8; ++i) {
    payload[i] = static_cast<char>(bytes >> (8 * i));
    payload[8 + i] = static_cast<char>(hash >> (8 * i));
  }
  return frame(pipe::FrameKind::kFinal, seq, payload);
}

// The fuzz input for a sequence of frames: each behind its 2-byte length.
std::string stream(const std::vector<std::string>& frames) {
  std::string out;
  for (const auto& f : frames) {
    out.push_back(static_cast<char>(f.size() & 0xff));
    out.push_back(static_cast<char>(f.size() >> 8));
    out += f;
  }
  return out;
}

void pipe_seeds(const fs::path& dir) {
  Corpus corpus(dir / "corpus" / "pipe");
  using pipe::FrameKind;
  const std::string chunks[] = {"zfs send stream, part one;", "", "part three\n\x00\xff"};
  std::string all;
  for (const auto& c : chunks) all += c;
  const uint64_t hash = XXH3_64bits(all.data(), all.size());

  std::vector<std::string> good;
  for (size_t i = 0; i < std::size(chunks); ++i) {
    good.push_back(frame(FrameKind::kData, i, chunks[i]));
  }
  good.push_back(final_frame(3, all.size(), hash));
  corpus.add("stream_ok", stream(good));

  corpus.add("data", stream({frame(FrameKind::kData, 0, chunks[0])}));
  corpus.add("keepalive", stream({frame(FrameKind::kData, 0, "")}));
  corpus.add("final_empty_stream", stream({final_frame(0, 0, XXH3_64bits(nullptr, 0))}));
  corpus.add("abort", stream({frame(FrameKind::kAbort, 0, "zfs send exited with status 1")}));
  corpus.add("abort_longest",
             stream({frame(FrameKind::kAbort, 0, std::string(pipe::kMaxAbortReasonBytes, 'r'))}));

  corpus.add("stream_gap", stream({good[0], good[2], good[3]}));
  corpus.add("stream_stranger",
             stream({good[0], frame(FrameKind::kData, 1, "noise", "another-token-xx"), good[1],
                     good[2], good[3]}));
  corpus.add("stream_bad_hash",
             stream({good[0], good[1], good[2], final_frame(3, all.size(), hash ^ 1)}));
  corpus.add("stream_bad_count",
             stream({good[0], good[1], good[2], final_frame(3, all.size() + 1, hash)}));
  corpus.add("stream_abort_midway",
             stream({good[0], frame(FrameKind::kAbort, 1, "cancelled"), good[1]}));
  corpus.add("stream_after_final", stream({good[0], good[1], good[2], good[3], good[0]}));

  std::string reserved = good[0];
  reserved[6] = 1;
  std::string kind = good[0];
  kind[4] = 'X';
  corpus.add("malformed", stream({reserved, kind, good[0].substr(0, pipe::kHeaderBytes - 1),
                                  final_frame(0, 0, 0) + "x"}));
}

}  // namespace
}  // namespace zps::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr,
                 "usage: %s DIR   (writes DIR/corpus/{control,pipe}/ and DIR/control.dict)\n",
                 argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  zps::fuzz::control_seeds(dir);
  zps::fuzz::control_dict(dir);
  zps::fuzz::pipe_seeds(dir);
  return 0;
}
