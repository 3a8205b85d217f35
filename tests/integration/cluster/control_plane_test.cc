// The control plane against real processes: registration and liveness of agents, a
// broker restart that the agents ride out on their own, the snapshots request answered
// from real zfs-fuse pools, and a broker that a hostile client can neither crash nor
// stall.
//
// The tests also print figures for the lead's notes, one "MEASURE name=value" line
// each: the broker's resident memory with three agents, and how long after a kill -9
// `zpsctl agents` shows the agent dead, at the harness's fast heartbeat and at the
// programs' default of 1000 ms.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <msgpack.hpp>
#include <zmq.hpp>

#include "shared/protocol.h"
#include "tests/support/cluster.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// Liveness is this many missed heartbeat intervals (the broker's kLiveness).
constexpr int kLivenessIntervals = 3;

long ms_since(SteadyClock::time_point t0) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0).count());
}

// A /proc/<pid>/status field in KiB ("VmRSS"), -1 when the process is gone.
long proc_status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

// Running, and not a zombie waiting to be reaped (the harness reaps only when it stops
// a process, so a crashed broker would linger as one).
bool process_running(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

size_t count_fds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    ++n;
  }
  return n;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t count_lines_containing(const std::string& text, const std::string& needle) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

// The largest N of the broker's "dropped N malformed message(s)" lines.
uint64_t largest_malformed_count(const std::string& log) {
  static const std::regex line("dropped ([0-9]+) malformed message");
  uint64_t n = 0;
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
    n = std::max<uint64_t>(n, std::stoull((*it)[1].str()));
  }
  return n;
}

const nlohmann::json* find_agent(const CtlResult& r, const std::string& id) {
  if (!r.json.is_array()) return nullptr;
  for (const auto& a : r.json) {
    if (a.value("id", "") == id) return &a;
  }
  return nullptr;
}

// ---- A hostile client ----------------------------------------------------------------

// Packs a msgpack map of string keys; values are packed by the callback.
template <typename F>
std::string packed_map(uint32_t n, F&& body) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(n);
  body(pk);
  return std::string(buf.data(), buf.size());
}

std::string request_body(const std::string& type, uint64_t id) {
  return packed_map(2, [&](auto& pk) {
    pk.pack("t");
    pk.pack(type);
    pk.pack("id");
    pk.pack(id);
  });
}

// A raw DEALER that speaks (or mangles) the control protocol: how a buggy or hostile
// peer looks to the broker. Sends time out instead of blocking forever, so a stalled
// broker fails the test instead of hanging it.
class RawClient {
 public:
  RawClient(zmq::context_t& ctx, const std::string& endpoint)
      : socket_(ctx, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::sndtimeo, 5000);
    socket_.set(zmq::sockopt::reconnect_ivl, 50);
    socket_.connect(endpoint);
  }

  // False when the broker did not take the message within the send timeout.
  bool send(const std::vector<std::string>& frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      const bool last = i + 1 == frames.size();
      if (!socket_.send(zmq::buffer(frames[i]), last ? zmq::send_flags::none : zmq::send_flags::sndmore)) {
        return false;
      }
    }
    return true;
  }

  // Reads whatever replies have arrived, without waiting; returns how many.
  size_t drain() {
    size_t n = 0;
    while (auto e = receive(0ms)) n += 1;
    return n;
  }

  // The next decodable control message within `timeout`.
  std::optional<proto::Envelope> receive(std::chrono::milliseconds timeout) {
    const auto until = SteadyClock::now() + timeout;
    do {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now());
      zmq::poll(&item, 1, std::max(left, 0ms));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> parts;
      bool more = true;
      while (more) {
        zmq::message_t m;
        if (!socket_.recv(m, zmq::recv_flags::dontwait)) break;
        more = m.more();
        parts.push_back(std::move(m));
      }
      if (parts.size() != 2) continue;
      auto e = proto::decode(parts[0].data(), parts[0].size(), parts[1].data(), parts[1].size());
      if (e.ok()) return *e;
    } while (SteadyClock::now() < until);
    return std::nullopt;
  }

  // Sends a request and waits for the reply to it, skipping anything else.
  std::optional<proto::Envelope> call(const std::string& body, uint64_t id,
                                      std::chrono::milliseconds timeout) {
    if (!send({std::string(proto::kSignature), body})) return std::nullopt;
    const auto until = SteadyClock::now() + timeout;
    while (SteadyClock::now() < until) {
      auto e = receive(std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now()));
      if (e && e->is_reply() && e->re == id) return e;
    }
    return std::nullopt;
  }

 private:
  zmq::socket_t socket_;
};

// Kinds of bad input, one per way a peer can get the framing or the encoding wrong.
enum class Junk {
  kRandomFrames,     // 1..6 frames of random bytes
  kBadSignature,     // a well-formed body behind a wrong signature frame
  kGarbageBody,      // the right signature, random bytes for a body
  kTruncatedBody,    // a valid envelope cut short
  kHugeDeclared,     // containers and strings that declare far more than they hold
  kNotAMap,          // valid msgpack, but not a map
  kUnknownType,      // a valid envelope of a type nobody speaks
  kWrongFieldTypes,  // known types with fields of the wrong type or shape
  kTooManyFrames,    // a valid message with extra frames after it
  kCount,
};

constexpr const char* kJunkNames[] = {"random_frames", "bad_signature", "garbage_body",
                                      "truncated_body", "huge_declared", "not_a_map",
                                      "unknown_type", "wrong_field_types", "too_many_frames"};

class JunkMaker {
 public:
  explicit JunkMaker(uint32_t seed) : rng_(seed) {}

  std::vector<std::string> make(Junk kind) {
    const std::string sig(proto::kSignature);
    switch (kind) {
      case Junk::kRandomFrames: {
        std::vector<std::string> frames(uniform(1, 6));
        for (auto& f : frames) f = random_bytes(uniform(0, 300));
        return frames;
      }
      case Junk::kBadSignature: {
        static const std::vector<std::string> sigs = {"", "ZPS", "ZPS2", "zps1", "ZPS1\n",
                                                      std::string("ZPS1\0", 5), "ZPS0", "1SPZ"};
        std::string s = pick(sigs);
        if (uniform(0, 3) == 0) s = random_bytes(4);
        if (s == sig) s = "ZPS9";
        return {s, request_body("agents", next_id())};
      }
      case Junk::kGarbageBody:
        return {sig, random_bytes(uniform(0, 512))};
      case Junk::kTruncatedBody: {
        std::string body = snapshots_body("n1", "pool/some/dataset");
        return {sig, body.substr(0, uniform(0, static_cast<int>(body.size()) - 1))};
      }
      case Junk::kHugeDeclared:
        return {sig, huge_declared()};
      case Junk::kNotAMap: {
        msgpack::sbuffer buf;
        msgpack::packer<msgpack::sbuffer> pk(buf);
        switch (uniform(0, 4)) {
          case 0: pk.pack_nil(); break;
          case 1: pk.pack(static_cast<int64_t>(rng_())); break;
          case 2: pk.pack(std::string("agents")); break;
          case 3: pk.pack(std::vector<std::string>{"t", "agents", "id", "1"}); break;
          default: pk.pack_double(3.5); break;
        }
        return {sig, std::string(buf.data(), buf.size())};
      }
      case Junk::kUnknownType: {
        std::string type;
        for (int i = uniform(1, 20); i > 0; --i) type.push_back(static_cast<char>('a' + uniform(0, 25)));
        // Half are notices (id 0), which get no reply; the rest get an error reply.
        return {sig, request_body("x" + type, uniform(0, 1) ? next_id() : 0)};
      }
      case Junk::kWrongFieldTypes:
        return {sig, wrong_field_types()};
      case Junk::kTooManyFrames: {
        std::vector<std::string> frames = {sig, request_body("agents", next_id())};
        for (int i = uniform(1, 8); i > 0; --i) frames.push_back(random_bytes(uniform(0, 40)));
        return frames;
      }
      case Junk::kCount:
        break;
    }
    return {};
  }

  Junk random_kind() { return static_cast<Junk>(uniform(0, static_cast<int>(Junk::kCount) - 1)); }

  static std::string snapshots_body(const std::string& agent, const std::string& dataset,
                                    uint64_t id = 7) {
    return packed_map(4, [&](auto& pk) {
      pk.pack("t");
      pk.pack("snapshots");
      pk.pack("id");
      pk.pack(id);
      pk.pack("agent");
      pk.pack(agent);
      pk.pack("dataset");
      pk.pack(dataset);
    });
  }

 private:
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  uint64_t next_id() { return ++id_; }
  const std::string& pick(const std::vector<std::string>& v) {
    return v[static_cast<size_t>(uniform(0, static_cast<int>(v.size()) - 1))];
  }
  std::string random_bytes(int n) {
    std::string s(static_cast<size_t>(n), '\0');
    for (auto& c : s) c = static_cast<char>(rng_());
    return s;
  }

  // Headers that promise gigabytes in a few bytes, nesting past any sane depth, and a
  // map with more keys than a message may have.
  std::string huge_declared() {
    static const std::vector<std::string> headers = {
        std::string("\xdf\xff\xff\xff\xff", 5),          // map32 of 2^32-1 entries
        std::string("\xdd\xff\xff\xff\xff", 5),          // array32 of 2^32-1 items
        std::string("\xdb\xff\xff\xff\xff" "abc", 8),    // str32 of 4 GiB
        std::string("\xc6\x7f\xff\xff\xff" "abc", 8),    // bin32 of 2 GiB
        std::string("\xc9\xff\xff\xff\xff\x01", 6),      // ext32 of 4 GiB
        std::string("\xde\xff\xff", 3),                  // map16 of 65535 entries, no bytes
        std::string("\xdc\xff\xff\xc0\xc0", 5),          // array16 of 65535, two present
    };
    switch (uniform(0, 4)) {
      case 0:
        return pick(headers);
      case 1:  // a valid envelope whose extra field lies about its size
        return packed_map(3, [&](auto& pk) {
                 pk.pack("t");
                 pk.pack("agents");
                 pk.pack("id");
                 pk.pack(next_id());
                 pk.pack("x");
               }) + pick(headers);
      case 2:  // nesting far deeper than the decoder's limit
        return std::string(static_cast<size_t>(uniform(13, 5000)), '\x91') + "\xc0";
      case 3:  // more keys than a struct's map may have
        return packed_map(300, [&](auto& pk) {
          pk.pack("t");
          pk.pack("agents");
          for (int i = 1; i < 300; ++i) {
            pk.pack("k" + std::to_string(i));
            pk.pack(i);
          }
        });
      default:  // a string over the per-string limit inside a valid envelope
        return packed_map(2, [&](auto& pk) {
          pk.pack("t");
          pk.pack("snapshots");
          pk.pack("agent");
          pk.pack(std::string((1u << 20) + 1, 'a'));
        });
    }
  }

  // Known message types with fields of the wrong type, envelopes with broken ids and
  // replies nobody asked for.
  std::string wrong_field_types() {
    switch (uniform(0, 9)) {
      case 0:  // id is a string
        return packed_map(2, [&](auto& pk) {
          pk.pack("t");
          pk.pack("agents");
          pk.pack("id");
          pk.pack("one");
        });
      case 1:  // t is a number
        return packed_map(2, [&](auto& pk) {
          pk.pack("t");
          pk.pack(42);
          pk.pack("id");
          pk.pack(next_id());
        });
      case 2:  // snapshots with an array for the agent
        return packed_map(4, [&](auto& pk) {
          pk.pack("t");
          pk.pack("snapshots");
          pk.pack("id");
          pk.pack(next_id());
          pk.pack("agent");
          pk.pack(std::vector<int>{1, 2, 3});
          pk.pack("dataset");
          pk.pack_nil();
        });
      case 3:  // a job id that is negative
        return packed_map(3, [&](auto& pk) {
          pk.pack("t");
          pk.pack(std::string(uniform(0, 1) ? "job" : "cancel"));
          pk.pack("id");
          pk.pack(next_id());
          pk.pack("job");
          pk.pack(-5);
        });
      case 4:  // a reply to a request the broker never made
        return packed_map(3, [&](auto& pk) {
          pk.pack("t");
          pk.pack("reply");
          pk.pack("re");
          pk.pack(static_cast<uint64_t>(uniform(1, 1000000)));
          pk.pack("ok");
          pk.pack(true);
        });
      case 5:  // a failed reply whose error is not a map
        return packed_map(4, [&](auto& pk) {
          pk.pack("t");
          pk.pack("reply");
          pk.pack("re");
          pk.pack(1);
          pk.pack("ok");
          pk.pack(false);
          pk.pack("err");
          pk.pack("boom");
        });
      case 6:  // agent-only requests from a peer that never said hello
        return packed_map(3, [&](auto& pk) {
          pk.pack("t");
          static const std::vector<std::string> types = {"job_end", "job_update", "prepare",
                                                         "target_state", "recv_result", "abort",
                                                         "heartbeat"};
          pk.pack(pick(types));
          pk.pack("id");
          pk.pack(next_id());
          pk.pack("job");
          pk.pack(static_cast<uint64_t>(uniform(1, 100)));
        });
      case 7:  // a hello that names no valid agent
        return packed_map(4, [&](auto& pk) {
          pk.pack("t");
          pk.pack("hello");
          pk.pack("id");
          pk.pack(next_id());
          pk.pack("agent");
          pk.pack(uniform(0, 1) ? std::string("bad agent!") : std::string());
          pk.pack("recv_roots");
          pk.pack(std::vector<std::string>{"-x"});
        });
      case 8:  // replicate with names that are not names
        return packed_map(4, [&](auto& pk) {
          pk.pack("t");
          pk.pack("replicate");
          pk.pack("id");
          pk.pack(next_id());
          pk.pack("source_agent");
          pk.pack(random_bytes(uniform(0, 10)));
          pk.pack("source_dataset");
          pk.pack(std::string("../../etc"));
        });
      default:  // snapshots of an agent that does not exist, with a bad dataset name
        return snapshots_body(random_bytes(uniform(1, 8)), "pool//x", next_id());
    }
  }

  std::mt19937 rng_;
  uint64_t id_ = 1000;
};

// ---- Fixture ---------------------------------------------------------------------------

class ControlPlaneTest : public ClusterTest {
 protected:
  // A broker and agents with these ids, each receiving into `<its pool>/recv`, all
  // alive. With `own_pools` every agent gets its own pool (as if on its own host);
  // otherwise they share one, which is cheaper for zfs-fuse and enough where pools
  // play no part.
  void start_fleet(const std::vector<std::string>& ids, bool own_pools = true) {
    start_broker();
    std::string shared_pool;
    for (const auto& id : ids) {
      std::string pool = own_pools || shared_pool.empty() ? create_pool(id) : shared_pool;
      if (shared_pool.empty()) shared_pool = pool;
      pools_[id] = pool;
      roots_[id] = own_pools ? pool + "/recv" : pool + "/recv-" + id;
      start_agent(AgentSpec{id, {roots_[id]}, {}});
    }
    wait_alive(ids);
  }

  CtlResult agents() { return cluster().ctl({"agents"}, true, 10s); }

  // Polls `zpsctl agents` back to back until `id` shows `alive`; returns the
  // milliseconds since `t0`, or -1 after `timeout`.
  long poll_until(const std::string& id, bool alive, SteadyClock::time_point t0,
                  std::chrono::milliseconds timeout) {
    while (SteadyClock::now() - t0 < timeout) {
      CtlResult r = agents();
      const nlohmann::json* a = find_agent(r, id);
      if (r.exit_code == 0 && a != nullptr && a->value("alive", !alive) == alive) return ms_since(t0);
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }

  // Kills `id` with SIGKILL at a random point of its heartbeat cycle (the detection
  // time depends on it) and returns the milliseconds until `zpsctl agents` showed it
  // not alive, or -1 after `timeout`.
  long kill_and_time_dead(const std::string& id, std::chrono::milliseconds timeout) {
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::uniform_int_distribution<int>(0, cluster().heartbeat_ms())(phase_rng_)));
    const auto t0 = SteadyClock::now();
    cluster().stop_agent(id, SIGKILL);
    return poll_until(id, false, t0, timeout);
  }

  void print_dead_detection(std::vector<long> samples, long resolution) {
    std::sort(samples.begin(), samples.end());
    const int hb = cluster().heartbeat_ms();
    std::cout << "MEASURE dead_detection_ms=" << samples[samples.size() / 2]
              << " (median; min " << samples.front() << " max " << samples.back() << " of "
              << samples.size() << " kills at random phases) heartbeat_ms=" << hb
              << " liveness_window_ms=" << hb * kLivenessIntervals
              << " zpsctl_round_trip_ms=" << resolution << std::endl;
  }

  // How long one `zpsctl agents` round trip takes: the resolution of poll_until().
  long ctl_round_trip_ms() {
    const auto t0 = SteadyClock::now();
    for (int i = 0; i < 5; ++i) agents();
    return ms_since(t0) / 5;
  }

  std::map<std::string, std::string> pools_;
  std::map<std::string, std::string> roots_;
  std::mt19937 phase_rng_{std::random_device{}()};
};

// ---- Tests -----------------------------------------------------------------------------

TEST_F(ControlPlaneTest, AgentsListsThreeLiveAgentsWithTheirRoots) {
  start_fleet({"n1", "n2", "n3"});

  CtlResult r = agents();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(r.json.is_array()) << r.describe();
  ASSERT_EQ(r.json.size(), 3u) << r.describe();
  for (const std::string id : {"n1", "n2", "n3"}) {
    const nlohmann::json* a = find_agent(r, id);
    ASSERT_NE(a, nullptr) << id << " missing: " << r.describe();
    EXPECT_TRUE(a->value("alive", false)) << id;
    EXPECT_EQ(a->value("recv_roots", nlohmann::json()), nlohmann::json::array({roots_[id]})) << id;
    EXPECT_FALSE(a->value("host", "").empty()) << id;
    EXPECT_EQ(a->value("active_recvs", -1), 0) << id;
    EXPECT_GT(a->value("max_recvs", 0), 0) << id;
  }

  // The receive roots exist now (the agents create them, unmounted).
  for (const auto& [id, root] : roots_) EXPECT_EQ(zfs({"list", "-H", "-o", "name", root}), root + "\n");

  // The text form names every agent and root too.
  CtlResult text = cluster().ctl({"agents"}, false, 10s);
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  for (const auto& [id, root] : roots_) {
    EXPECT_NE(text.out.find(id), std::string::npos) << text.out;
    EXPECT_NE(text.out.find(root), std::string::npos) << text.out;
  }

  // Stays so: no agent is taken for dead while it heartbeats (the harness's 200 ms
  // heartbeat leaves a 600 ms window, on a busy machine).
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(150ms);
    CtlResult again = agents();
    ASSERT_EQ(again.exit_code, 0) << again.describe();
    for (const auto& a : again.json) EXPECT_TRUE(a.value("alive", false)) << again.out;
  }

  const long rss = proc_status_kib(cluster().broker_pid(), "VmRSS");
  const long hwm = proc_status_kib(cluster().broker_pid(), "VmHWM");
  ASSERT_GT(rss, 0);
  std::cout << "MEASURE broker_rss_kib=" << rss << " (three agents, idle; VmHWM " << hwm
            << " KiB)" << std::endl;
  EXPECT_LT(rss, 64 * 1024) << "a broker with three agents should fit in a few MiB";
}

TEST_F(ControlPlaneTest, KilledAgentIsShownDeadWithinTheLivenessWindowAndAliveAgainAfterRestart) {
  start_fleet({"n1", "n2", "n3"}, false);
  const int hb = cluster().heartbeat_ms();
  const long resolution = ctl_round_trip_ms();

  // The broker notices on its first sweep (one per interval) after the window since the
  // last heartbeat, which came at most an interval before the kill; add the round trip
  // of the zpsctl that saw it.
  const long latest = hb * (kLivenessIntervals + 1) + resolution + 500;
  std::vector<long> samples;
  const long dead_ms = kill_and_time_dead("n2", 10s);
  ASSERT_GE(dead_ms, 0) << "n2 still shown alive 10 s after kill -9\n" << cluster().logs();
  EXPECT_LE(dead_ms, latest);
  samples.push_back(dead_ms);

  CtlResult r = agents();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_EQ(r.json.size(), 3u) << "a dead agent stays listed: " << r.describe();
  EXPECT_FALSE(find_agent(r, "n2")->value("alive", true));
  EXPECT_EQ(find_agent(r, "n2")->value("recv_roots", nlohmann::json()),
            nlohmann::json::array({roots_["n2"]}));
  EXPECT_TRUE(find_agent(r, "n1")->value("alive", false)) << r.describe();
  EXPECT_TRUE(find_agent(r, "n3")->value("alive", false)) << r.describe();

  // A dead agent's datasets cannot be listed, and the refusal says why.
  CtlResult snaps = cluster().ctl({"snapshots", "n2:" + pools_["n2"]}, true, 10s);
  EXPECT_NE(snaps.exit_code, 0) << snaps.describe();
  EXPECT_NE(snaps.err.find("n2"), std::string::npos) << snaps.describe();

  const auto t1 = SteadyClock::now();
  ASSERT_TRUE(cluster().restart_agent("n2").ok());
  const long back_ms = poll_until("n2", true, t1, 15s);
  ASSERT_GE(back_ms, 0) << "n2 not alive again after its restart\n" << cluster().logs();
  std::cout << "MEASURE agent_restart_to_alive_ms=" << back_ms << std::endl;

  // More kills for the figure.
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(cluster().wait_alive({"n2"}, 10s).ok()) << cluster().logs();
    const long ms = kill_and_time_dead("n2", 10s);
    ASSERT_GE(ms, 0) << "n2 still shown alive 10 s after kill -9\n" << cluster().logs();
    EXPECT_LE(ms, latest);
    samples.push_back(ms);
    ASSERT_TRUE(cluster().restart_agent("n2").ok());
  }
  print_dead_detection(samples, resolution);
  ASSERT_TRUE(cluster().wait_alive({"n2"}, 10s).ok()) << cluster().logs();

  r = agents();
  ASSERT_EQ(r.json.size(), 3u) << r.describe();
  for (const auto& a : r.json) EXPECT_TRUE(a.value("alive", false)) << r.out;
  CtlResult snaps2 = cluster().ctl({"snapshots", "n2:" + pools_["n2"]}, true, 10s);
  EXPECT_EQ(snaps2.exit_code, 0) << snaps2.describe();

  // Killed and back before the broker noticed: the new process takes the entry over,
  // and the old connection's silence does not make it dead a window later.
  const pid_t old_n3 = cluster().agent_pid("n3");
  cluster().stop_agent("n3", SIGKILL);
  ASSERT_TRUE(cluster().restart_agent("n3").ok());
  ASSERT_NE(cluster().agent_pid("n3"), old_n3);
  ASSERT_TRUE(cluster().wait_alive({"n3"}, 10s).ok()) << cluster().logs();
  const auto until = SteadyClock::now() + std::chrono::milliseconds(hb * (kLivenessIntervals + 2));
  while (SteadyClock::now() < until) {
    CtlResult now = agents();
    ASSERT_EQ(now.exit_code, 0) << now.describe();
    ASSERT_TRUE(find_agent(now, "n3")->value("alive", false)) << "n3 flapped to dead\n" << cluster().logs();
    std::this_thread::sleep_for(50ms);
  }
  CtlResult snaps3 = cluster().ctl({"snapshots", "n3:" + pools_["n3"]}, true, 10s);
  EXPECT_EQ(snaps3.exit_code, 0) << "requests reach the new n3: " << snaps3.describe();
}

TEST_F(ControlPlaneTest, DeadDetectionTimeAtTheDefaultHeartbeat) {
  cluster().set_heartbeat_ms(1000);  // the programs' default
  start_fleet({"n1"});
  const long resolution = ctl_round_trip_ms();

  std::vector<long> samples;
  for (int i = 0; i < 2; ++i) {
    if (i > 0) {
      ASSERT_TRUE(cluster().restart_agent("n1").ok());
      ASSERT_TRUE(cluster().wait_alive({"n1"}, 10s).ok()) << cluster().logs();
    }
    const long dead_ms = kill_and_time_dead("n1", 15s);
    ASSERT_GE(dead_ms, 0) << "n1 still shown alive 15 s after kill -9\n" << cluster().logs();
    // Not before the window has passed since the last heartbeat, which came at most one
    // interval (and the agent's 50 ms tick) before the kill; not later than one sweep
    // after the window.
    EXPECT_GE(dead_ms, 1000 * (kLivenessIntervals - 1) - 300);
    EXPECT_LE(dead_ms, 1000 * (kLivenessIntervals + 1) + resolution + 500);
    samples.push_back(dead_ms);
  }
  print_dead_detection(samples, resolution);
}

TEST_F(ControlPlaneTest, BrokerRestartFindsEveryAgentAliveAgainWithoutRestartingThem) {
  start_fleet({"n1", "n2", "n3"}, false);
  const std::string data = pools_["n1"] + "/data";
  create_dataset(data);
  snapshot(data, "a");
  std::map<std::string, pid_t> pids;
  for (const auto& [id, pool] : pools_) pids[id] = cluster().agent_pid(id);

  // Killed, stopped cleanly, and killed and kept away for longer than the liveness
  // window (then the agents give the broker up, reconnect and register anew).
  const auto away = std::chrono::milliseconds(cluster().heartbeat_ms() * kLivenessIntervals * 2);
  struct Restart {
    int sig;
    std::chrono::milliseconds pause;
  };
  for (const Restart& restart : {Restart{SIGKILL, 0ms}, Restart{SIGTERM, 0ms}, Restart{SIGKILL, away}}) {
    const int sig = restart.sig;
    SCOPED_TRACE("broker stopped with signal " + std::to_string(sig) + ", away for " +
                 std::to_string(restart.pause.count()) + " ms");
    const pid_t old_broker = cluster().broker_pid();
    if (restart.pause > 0ms) {
      cluster().stop_broker(sig);
      std::this_thread::sleep_for(restart.pause);
    }
    const auto t0 = SteadyClock::now();
    ASSERT_TRUE(cluster().restart_broker(sig).ok()) << cluster().logs();
    ASSERT_NE(cluster().broker_pid(), old_broker);

    // Right after the restart the broker knows the agents from its store (listed, not
    // alive until they say hello again).
    CtlResult early = agents();
    ASSERT_EQ(early.exit_code, 0) << early.describe();
    EXPECT_EQ(early.json.size(), 3u) << early.describe();

    ASSERT_TRUE(cluster().wait_alive({"n1", "n2", "n3"}, 15s).ok()) << cluster().logs();
    std::cout << "MEASURE broker_restart_to_all_alive_ms=" << ms_since(t0) << " signal=" << sig
              << " away_ms=" << restart.pause.count() << std::endl;

    for (const auto& [id, pid] : pids) {
      EXPECT_EQ(cluster().agent_pid(id), pid) << id << " was restarted";
      EXPECT_TRUE(process_running(pid)) << id;
    }
    CtlResult r = agents();
    ASSERT_EQ(r.json.size(), 3u) << r.describe();
    for (const auto& a : r.json) {
      EXPECT_TRUE(a.value("alive", false)) << r.out;
      EXPECT_EQ(a.value("recv_roots", nlohmann::json()),
                nlohmann::json::array({roots_[a.value("id", "")]}));
    }
    // Requests are routed to the re-registered agents, not only their heartbeats.
    CtlResult snaps = cluster().ctl({"snapshots", "n1:" + data}, true, 10s);
    ASSERT_EQ(snaps.exit_code, 0) << snaps.describe();
    ASSERT_EQ(snaps.json.size(), 1u) << snaps.describe();
  }
  EXPECT_EQ(count_lines_containing(read_text(cluster().dir() + "/broker.log"),
                                   "agent n1 registered"),
            4u)
      << "n1 registers once per broker start";
  // Kept away, the broker was given up for lost (and found again).
  for (const auto& [id, pool] : pools_) {
    EXPECT_GE(count_lines_containing(read_text(cluster().dir() + "/" + id + ".log"), "lost the broker"), 1u)
        << id;
  }
}

TEST_F(ControlPlaneTest, SnapshotsReturnsTheRealSnapshotsWithTheGuidsZfsPrints) {
  start_fleet({"n1"});
  const std::string data = pools_["n1"] + "/data";
  create_dataset(data);
  for (const std::string s : {"first", "second", "2024-01-01_00.00", "last"}) {
    write_file(data, "f", s);
    snapshot(data, s);
  }
  // Snapshots of a child and of the parent are not the dataset's own.
  create_dataset(data + "/child");
  snapshot(data + "/child", "childsnap");
  snapshot(pools_["n1"], "poolsnap");

  CtlResult r = cluster().ctl({"snapshots", "n1:" + data}, true, 10s);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(r.json.is_array()) << r.describe();
  const std::vector<SnapshotVersion> expected = snapshots(data);
  ASSERT_EQ(expected.size(), 4u);
  ASSERT_EQ(r.json.size(), expected.size()) << r.describe();
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& got = r.json[i];
    SCOPED_TRACE("snapshot " + expected[i].name);
    EXPECT_EQ(got.value("name", ""), expected[i].name);
    // guids as decimal strings, exactly what `zfs get -Hp guid` prints.
    ASSERT_TRUE(got["guid"].is_string()) << got.dump();
    const std::string zfs_guid = zfs({"get", "-Hp", "-o", "value", "guid", data + "@" + expected[i].name});
    EXPECT_EQ(got["guid"].get<std::string>() + "\n", zfs_guid);
    EXPECT_EQ(got["guid"].get<std::string>(), std::to_string(guid_of(data + "@" + expected[i].name)));
    EXPECT_EQ(got.value("createtxg", uint64_t{0}), expected[i].createtxg);
  }

  // A dataset without snapshots has an empty list, not an error.
  create_dataset(data + "/bare");
  CtlResult bare = cluster().ctl({"snapshots", "n1:" + data + "/bare"}, true, 10s);
  ASSERT_EQ(bare.exit_code, 0) << bare.describe();
  EXPECT_EQ(bare.json, nlohmann::json::array()) << bare.describe();

  // The text form shows the same names.
  CtlResult text = cluster().ctl({"snapshots", "n1:" + data}, false, 10s);
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  for (const auto& s : expected) EXPECT_NE(text.out.find(s.name), std::string::npos) << text.out;
}

TEST_F(ControlPlaneTest, SnapshotsOfAMissingDatasetOrAnInvalidNameIsRefusedNamingIt) {
  start_fleet({"n1"});
  const std::string pool = pools_["n1"];

  struct Case {
    std::string arg;
    std::string named;  // what the message must mention
  };
  const std::vector<Case> cases = {
      {"n1:" + pool + "/does-not-exist", pool + "/does-not-exist"},
      {"n1:" + pool + "/a/b/c", pool + "/a/b/c"},
      {"n1:nosuchpool/data", "nosuchpool/data"},
      {"n1:" + pool + "//x", pool + "//x"},
      {"n1:" + pool + "/x@snap", pool + "/x@snap"},
      {"n1:" + pool + "/-rf", pool + "/-rf"},
      {"n1:" + pool + "/bad name", pool + "/bad name"},
      {"n1:" + pool + "/../etc", pool + "/../etc"},
      {"n1:" + pool + "/" + std::string(300, 'x'), std::string(40, 'x')},
      {"nosuchagent:" + pool, "nosuchagent"},
  };
  for (const auto& c : cases) {
    for (bool json : {true, false}) {
      SCOPED_TRACE(c.arg + (json ? " --json" : ""));
      CtlResult r = cluster().ctl({"snapshots", c.arg}, json, 10s);
      EXPECT_EQ(r.exit_code, 4) << r.describe();
      EXPECT_NE(r.err.find(c.named), std::string::npos) << r.describe();
      if (json) {
        EXPECT_TRUE(r.out.empty()) << "nothing but a JSON document on stdout: " << r.out;
      }
    }
  }

  // zpsctl checks names before it sends; the broker checks them again for clients that
  // do not, and says which name is wrong.
  zmq::context_t ctx;
  RawClient raw(ctx, cluster().endpoint());
  for (const std::string& bad : {pool + "//x", "-" + pool, pool + "/x@y", std::string()}) {
    auto reply = raw.call(JunkMaker::snapshots_body("n1", bad, 77), 77, 5s);
    ASSERT_TRUE(reply.has_value()) << "no reply for dataset '" << bad << "'";
    EXPECT_FALSE(reply->ok);
    EXPECT_EQ(reply->err.code, "invalid_argument") << reply->err.msg;
    if (!bad.empty()) {
      EXPECT_NE(reply->err.msg.find(bad), std::string::npos) << reply->err.msg;
    }
  }
}

TEST_F(ControlPlaneTest, TenThousandMalformedFramesNeitherCrashNorStallTheBroker) {
  start_fleet({"n1", "n2", "n3"}, false);
  const pid_t broker = cluster().broker_pid();
  const std::string log_path = cluster().dir() + "/broker.log";
  const size_t log_lines_before = count_lines_containing(read_text(log_path), "");
  const long rss_before = proc_status_kib(broker, "VmRSS");

  constexpr int kFrames = 10000;
  // A new seed every run for more coverage; ZPS_JUNK_SEED repeats a failed run's junk.
  uint32_t seed = static_cast<uint32_t>(std::random_device{}());
  if (const char* s = std::getenv("ZPS_JUNK_SEED")) seed = static_cast<uint32_t>(std::stoul(s));
  std::cout << "junk seed " << seed << " (ZPS_JUNK_SEED=" << seed << " repeats it)" << std::endl;
  JunkMaker junk(seed);
  zmq::context_t ctx;
  RawClient raw(ctx, cluster().endpoint());
  std::map<Junk, int> sent;
  size_t replies = 0;
  long mid_ms = -1;
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < kFrames; ++i) {
    std::vector<std::string> frames;
    if (i % 2500 == 1250) {
      // Over ZMQ_MAXMSGSIZE: the broker's socket drops the connection (the DEALER
      // reconnects) instead of taking the bytes in.
      frames = {std::string(proto::kSignature), std::string(9u << 20, '\x91')};
    } else if (i % 2500 == 625) {
      // Within every limit but as costly as a message gets: a million elements to
      // unpack (the design's "about 50 MiB" case), in a valid envelope.
      frames = {std::string(proto::kSignature), packed_map(3, [](auto& pk) {
                  pk.pack("t");
                  pk.pack("agents");
                  pk.pack("id");
                  pk.pack(77);
                  pk.pack("x");
                  pk.pack_array((1u << 20) - 8);
                  for (uint32_t k = 0; k < (1u << 20) - 8; ++k) pk.pack_nil();
                })};
    } else {
      const Junk kind = junk.random_kind();
      frames = junk.make(kind);
      ++sent[kind];
    }
    ASSERT_TRUE(raw.send(frames)) << "the broker stopped taking messages after " << i
                                  << " of them\n" << cluster().logs();
    if (i % 100 == 0) replies += raw.drain();
    if (i == kFrames / 2) {
      // Halfway, with whatever the broker still has queued from us.
      const auto tm = SteadyClock::now();
      CtlResult mid = agents();
      mid_ms = ms_since(tm);
      EXPECT_EQ(mid.exit_code, 0) << mid.describe();
    }
  }
  const long send_ms = ms_since(t0);

  // Messages on one connection arrive in order: once the broker answers this one it
  // has been through everything before it.
  auto last = raw.call(request_body("agents", 424242), 424242, 20s);
  ASSERT_TRUE(last.has_value()) << "the broker did not answer after the junk\n" << cluster().logs();
  EXPECT_TRUE(last->ok);
  const long drained_ms = ms_since(t0);
  std::cout << "MEASURE junk_frames=" << kFrames << " send_ms=" << send_ms
            << " all_handled_ms=" << drained_ms << " replies=" << replies
            << " agents_during_junk_ms=" << mid_ms << std::endl;
  for (const auto& [kind, n] : sent) std::cout << "  " << kJunkNames[static_cast<int>(kind)] << ": " << n << "\n";

  // An unknown type still gets an error reply that names it.
  auto unknown = raw.call(request_body("frobnicate", 5151), 5151, 5s);
  ASSERT_TRUE(unknown.has_value());
  EXPECT_FALSE(unknown->ok);
  EXPECT_NE(unknown->err.msg.find("frobnicate"), std::string::npos) << unknown->err.msg;

  ASSERT_TRUE(process_running(broker)) << cluster().logs();
  const auto t1 = SteadyClock::now();
  CtlResult r = agents();
  const long answer_ms = ms_since(t1);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_LT(answer_ms, 2000) << "zpsctl agents took " << answer_ms << " ms after the junk";
  std::cout << "MEASURE agents_after_junk_ms=" << answer_ms << std::endl;
  ASSERT_EQ(r.json.size(), 3u) << "junk registered no agent: " << r.describe();
  for (const auto& a : r.json) EXPECT_TRUE(a.value("alive", false)) << "starved of heartbeats: " << r.out;

  // Peers that come, throw junk and go: the broker keeps nothing of them (its open
  // files return to what they were).
  const size_t fds_before = count_fds(broker);
  for (int c = 0; c < 100; ++c) {
    RawClient brief(ctx, cluster().endpoint());
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(brief.send(junk.make(junk.random_kind())));
    if (c % 10 == 0) {
      ASSERT_TRUE(brief.call(request_body("agents", 9000 + c), 9000 + c, 5s).has_value());
    }
  }
  ASSERT_TRUE(raw.call(request_body("agents", 434343), 434343, 10s).has_value()) << cluster().logs();
  size_t fds_after = count_fds(broker);
  for (int i = 0; i < 50 && fds_after > fds_before; ++i) {  // closing takes the broker a moment
    std::this_thread::sleep_for(20ms);
    fds_after = count_fds(broker);
  }
  EXPECT_LE(fds_after, fds_before) << "connections of departed peers are still open";
  std::cout << "MEASURE broker_fds_before_churn=" << fds_before << " after=" << fds_after << std::endl;

  const long rss_after = proc_status_kib(broker, "VmRSS");
  const long hwm = proc_status_kib(broker, "VmHWM");
  std::cout << "MEASURE broker_rss_kib_before_junk=" << rss_before
            << " broker_rss_kib_after_junk=" << rss_after << " broker_vmhwm_kib=" << hwm
            << std::endl;
  EXPECT_LT(hwm, 128 * 1024) << "the junk made the broker allocate without bound";

  // The log summarises the junk instead of a line per frame.
  const std::string log = read_text(log_path);
  const size_t malformed_lines = count_lines_containing(log, "malformed message(s)");
  const size_t new_lines = count_lines_containing(log, "") - log_lines_before;
  EXPECT_GE(malformed_lines, 1u) << log;
  EXPECT_LE(malformed_lines, static_cast<size_t>(2 + drained_ms / 5000)) << log;
  EXPECT_LT(new_lines, 50u) << "the junk flooded the broker's log";

  // Once the burst is over the log gives its full count (a line at most every 5 s).
  uint64_t reported = 0;
  for (const auto until = t0 + 8s; SteadyClock::now() < until && reported < kFrames / 2;) {
    std::this_thread::sleep_for(100ms);
    reported = largest_malformed_count(read_text(log_path));
  }
  EXPECT_GE(reported, static_cast<uint64_t>(kFrames / 2))
      << "the log still does not count the junk 8 s after it began\n" << read_text(log_path);
  std::cout << "MEASURE broker_logged_malformed=" << reported << std::endl;
}

}  // namespace
}  // namespace zps::test
