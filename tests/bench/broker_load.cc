// Benchmark 4 of tests/bench/run: the broker at scale.
//
// One process plays N agents against a real zps-broker: N DEALER connections that say
// hello (proto::Hello, each with its own receive root) and heartbeat at the interval
// the broker announces, each at its own phase. Meanwhile it drives real job traffic
// through the broker: a client socket sends `replicate` requests (source and target
// among the fake agents, a fresh target dataset each, so every job takes and releases
// a lock); the fake source agent answers job_start, asks the fake receiver for the
// target's state through the broker (a forwarded request), reports hop_started and
// hop_done, and ends the job with job_end (receives settled: the locks go at once).
//
// After registration it measures the broker's CPU share over two quiet windows
// (--quiet S each): heartbeats alone, then heartbeats and jobs. Then, with the round
// trips below running too, over a window after a warm-up:
//   - the broker's CPU share (utime + stime from /proc/PID/stat) and RSS (VmRSS
//     sampled, VmHWM at the end);
//   - the round trip of an `agents` request (the bytes zpsctl sends) on its own
//     DEALER and thread, every --rt-interval-ms, until the reply has arrived;
//   - optionally the wall time of the real `zpsctl --json agents` (--zpsctl PATH),
//     process start-up, decoding and printing included.
//
// Prints "key value" lines (see the end of main). Exit status 1 when agents failed to
// register or the broker stopped answering; jobs that fail are counted, not fatal.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "shared/channel.h"
#include "shared/protocol.h"
#include "shared/version.h"
#include "tests/bench/args.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace proto = zps::proto;

struct Config {
  std::string broker;
  int agents = 1000;
  int broker_pid = 0;
  double warmup_s = 3;
  double quiet_s = 5;  // each of the two windows without round trips (0: none)
  double duration_s = 20;
  double jobs_per_s = 20;
  int rt_interval_ms = 50;
  int zpsctl_interval_ms = 500;
  std::string zpsctl;
  int io_threads = 2;
  double register_timeout_s = 60;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "zps_broker_load: %s\n", msg.c_str());
  std::exit(1);
}

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least p of the samples at or below it.
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// ---- /proc ----------------------------------------------------------------------------

struct CpuTicks {
  uint64_t ticks = 0;
  bool ok = false;
};

CpuTicks cpu_of(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return {};
  // Field 2 (comm) may contain spaces: parse after the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  // rest starts at field 3 (state); utime is field 14, stime field 15.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return {utime + stime, true};
}

// A "VmRSS:" style line of /proc/PID/status, in KiB (0 when absent).
uint64_t status_kib(int pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1));
  }
  return 0;
}

// ---- Fake agents -----------------------------------------------------------------------

struct Job {
  uint64_t job = 0;
  std::string target_dataset;
  uint64_t fence = 0;
  Clock::time_point started;
};

struct FakeAgent {
  std::string id;
  std::string root;
  std::unique_ptr<zmq::socket_t> sock;
  uint64_t hello_id = 0;
  bool registered = false;
  Clock::time_point next_heartbeat;
  std::map<uint64_t, Job> waiting_state;  // request id of target_state -> job
  std::map<uint64_t, Job> waiting_end;    // request id of job_end -> job
};

struct Counters {
  uint64_t heartbeats_sent = 0;
  uint64_t heartbeats_received = 0;
  uint64_t reregisters = 0;
  uint64_t jobs_requested = 0;
  uint64_t jobs_accepted = 0;
  uint64_t jobs_refused = 0;
  uint64_t jobs_done = 0;
  uint64_t jobs_failed = 0;
  uint64_t forwards_answered = 0;
  uint64_t unexpected = 0;
  std::string first_error;
};

class Load {
 public:
  Load(const Config& c, zmq::context_t& ctx) : c_(c), ctx_(ctx) {}

  void connect_all() {
    agents_.resize(static_cast<size_t>(c_.agents));
    for (int i = 0; i < c_.agents; ++i) {
      FakeAgent& a = agents_[static_cast<size_t>(i)];
      char id[32];
      std::snprintf(id, sizeof id, "load%04d", i);
      a.id = id;
      a.root = "loadpool/r" + std::to_string(i);
      a.sock = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
      zps::configure_control_socket(*a.sock);
      a.sock->connect(c_.broker);
    }
    client_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
    zps::configure_control_socket(*client_);
    client_->connect(c_.broker);
  }

  // Says hello from every agent and waits until all are registered. Returns seconds.
  double register_all() {
    const auto start = Clock::now();
    for (auto& a : agents_) send_hello(a);
    size_t registered = 0;
    while (registered < agents_.size()) {
      if (since(start) > c_.register_timeout_s) {
        die("only " + std::to_string(registered) + " of " + std::to_string(agents_.size()) +
            " agents registered within " + std::to_string(c_.register_timeout_s) + " s");
      }
      poll_once(10ms);
      registered = 0;
      for (const auto& a : agents_) registered += a.registered ? 1 : 0;
    }
    const double took = since(start);
    // Spread the heartbeats over one interval, as independent agents would be.
    const auto now = Clock::now();
    for (size_t i = 0; i < agents_.size(); ++i) {
      agents_[i].next_heartbeat = now + heartbeat_ * static_cast<int64_t>(i) /
                                            static_cast<int64_t>(agents_.size());
    }
    return took;
  }

  // Serves heartbeats and job traffic until `until`.
  void run_until(Clock::time_point until, bool jobs) {
    if (next_job_ == Clock::time_point{}) next_job_ = Clock::now();
    const auto job_every = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(c_.jobs_per_s > 0 ? 1.0 / c_.jobs_per_s : 1e9));
    while (Clock::now() < until) {
      poll_once(5ms);
      const auto now = Clock::now();
      for (auto& a : agents_) {
        if (a.registered && now >= a.next_heartbeat) {
          a.next_heartbeat += heartbeat_;
          if (a.next_heartbeat < now) a.next_heartbeat = now + heartbeat_;
          proto::Heartbeat hb;
          hb.pools = {{"loadpool", 1ull << 40}};
          zps::send_control(*a.sock, "", proto::encode_notice(hb));
          ++n_.heartbeats_sent;
        }
      }
      if (jobs && c_.jobs_per_s > 0 && now >= next_job_) {
        next_job_ += job_every;
        if (next_job_ < now - 1s) next_job_ = now;  // fell behind: do not burst
        request_job();
      }
    }
  }

  std::vector<double> job_seconds;
  std::vector<double> replicate_ms;
  Counters n_;

 private:
  void send_hello(FakeAgent& a) {
    proto::Hello h;
    h.agent = a.id;
    h.host = "loadhost";
    h.version = zps::kVersion;
    h.data_address = "127.0.0.1";
    h.recv_roots = {a.root};
    h.pools = {{"loadpool", 1ull << 40}};
    h.max_recvs = 8;
    a.hello_id = ++request_seq_;
    zps::send_control(*a.sock, "", proto::encode_request(h, a.hello_id));
  }

  void request_job() {
    std::uniform_int_distribution<size_t> pick(0, agents_.size() - 1);
    size_t s = pick(rng_), t = pick(rng_);
    if (agents_.size() > 1) {
      while (t == s) t = pick(rng_);
    }
    const uint64_t k = ++job_seq_;
    proto::ReplicateRequest r;
    r.source_agent = agents_[s].id;
    r.source_dataset = "loadpool/src/d" + std::to_string(k);
    r.target_agent = agents_[t].id;
    r.target_dataset = agents_[t].root + "/d" + std::to_string(k);
    const uint64_t id = ++request_seq_;
    replicate_sent_[id] = Clock::now();
    zps::send_control(*client_, "", proto::encode_request(r, id));
    ++n_.jobs_requested;
  }

  void poll_once(std::chrono::milliseconds timeout) {
    if (items_.size() != agents_.size() + 1) {
      items_.clear();
      for (auto& a : agents_) items_.push_back({a.sock->handle(), 0, ZMQ_POLLIN, 0});
      items_.push_back({client_->handle(), 0, ZMQ_POLLIN, 0});
    }
    try {
      zmq::poll(items_.data(), items_.size(), timeout);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) return;
      throw;
    }
    for (size_t i = 0; i < agents_.size(); ++i) {
      if (!(items_[i].revents & ZMQ_POLLIN)) continue;
      while (auto in = zps::recv_control(*agents_[i].sock, false)) on_agent_message(agents_[i], *in);
    }
    if (items_.back().revents & ZMQ_POLLIN) {
      while (auto in = zps::recv_control(*client_, false)) on_client_message(*in);
    }
  }

  void note_error(const std::string& what) {
    if (n_.first_error.empty()) n_.first_error = what;
  }

  void on_client_message(const zps::Inbound& in) {
    if (!in.message.ok()) return note_error(in.message.status().message());
    const proto::Envelope& e = *in.message;
    if (!e.is_reply()) return;
    auto it = replicate_sent_.find(e.re);
    if (it == replicate_sent_.end()) return;
    replicate_ms.push_back(since(it->second) * 1000);
    replicate_sent_.erase(it);
    if (e.ok) {
      ++n_.jobs_accepted;
    } else {
      ++n_.jobs_refused;
      note_error("replicate refused: " + e.err.msg);
    }
  }

  void on_agent_message(FakeAgent& a, const zps::Inbound& in) {
    if (!in.message.ok()) return note_error(in.message.status().message());
    const proto::Envelope& e = *in.message;
    if (e.is_reply()) return on_agent_reply(a, e);
    if (e.type == proto::Heartbeat::kType) {
      ++n_.heartbeats_received;
      return;
    }
    if (e.type == proto::Reregister::kType) {
      ++n_.reregisters;
      a.registered = false;
      return send_hello(a);
    }
    if (e.type == proto::JobStart::kType) {
      auto js = e.as<proto::JobStart>();
      if (!js.ok()) return note_error(js.status().message());
      zps::send_control(*a.sock, "", proto::encode_reply(e.id, proto::Empty{}));
      Job job{js->job, js->target_dataset, js->fence, Clock::now()};
      // As a sender would: ask the receiver (through the broker) what the target holds.
      const uint64_t rid = ++request_seq_;
      a.waiting_state[rid] = job;
      zps::send_control(*a.sock, "",
                        proto::encode_request(proto::TargetStateRequest{job.job, job.target_dataset, 0},
                                              rid));
      return;
    }
    if (e.type == proto::TargetStateRequest::kType) {
      // As a receiver: an empty target.
      ++n_.forwards_answered;
      zps::send_control(*a.sock, "", proto::encode_reply(e.id, proto::TargetStateReply{}));
      return;
    }
    ++n_.unexpected;
    if (e.id != 0) {
      zps::send_control(*a.sock, "",
                        proto::encode_error(e.id, zps::Status(zps::Code::kProtocol,
                                                              "load agent does not handle " + e.type)));
    }
  }

  void on_agent_reply(FakeAgent& a, const proto::Envelope& e) {
    if (e.re == a.hello_id) {
      if (!e.ok) die("the broker refused hello from " + a.id + ": " + e.err.msg);
      auto r = e.as<proto::HelloReply>();
      if (r.ok() && r->heartbeat_ms > 0) heartbeat_ = std::chrono::milliseconds(r->heartbeat_ms);
      a.registered = true;
      a.next_heartbeat = Clock::now() + heartbeat_;
      return;
    }
    if (auto it = a.waiting_state.find(e.re); it != a.waiting_state.end()) {
      Job job = it->second;
      a.waiting_state.erase(it);
      if (!e.ok) {
        note_error("target_state: " + e.err.msg);
      }
      // One hop: started, done; then the end of the job.
      proto::JobUpdate u;
      u.job = job.job;
      u.kind = "hop_started";
      u.dataset = "loadpool/src";
      u.hop = 1;
      u.of = 1;
      u.to = "s1";
      zps::send_control(*a.sock, "", proto::encode_notice(u));
      u.kind = "hop_done";
      u.bytes = 4096;
      u.seconds = 0.001;
      u.rate = 4096 / 0.001;
      zps::send_control(*a.sock, "", proto::encode_notice(u));
      proto::JobEnd end;
      end.job = job.job;
      end.state = e.ok ? "succeeded" : "failed";
      end.error = e.ok ? "" : e.err.msg;
      end.receives_settled = true;
      const uint64_t rid = ++request_seq_;
      a.waiting_end[rid] = job;
      zps::send_control(*a.sock, "", proto::encode_request(end, rid));
      return;
    }
    if (auto it = a.waiting_end.find(e.re); it != a.waiting_end.end()) {
      job_seconds.push_back(since(it->second.started));
      a.waiting_end.erase(it);
      if (e.ok) {
        ++n_.jobs_done;
      } else {
        ++n_.jobs_failed;
        note_error("job_end: " + e.err.msg);
      }
      return;
    }
  }

  const Config& c_;
  zmq::context_t& ctx_;
  std::vector<FakeAgent> agents_;
  std::unique_ptr<zmq::socket_t> client_;
  std::vector<zmq::pollitem_t> items_;
  std::map<uint64_t, Clock::time_point> replicate_sent_;
  std::chrono::milliseconds heartbeat_{1000};
  Clock::time_point next_job_{};
  uint64_t request_seq_ = 0;
  uint64_t job_seq_ = 0;
  std::mt19937_64 rng_{7};
};

// ---- Measurements on their own threads -------------------------------------------------

// Round trips of `agents` on one DEALER, recorded while `recording` is set.
struct RoundTrips {
  std::vector<double> ms;
  uint64_t timeouts = 0;
  size_t last_agents = 0;
  size_t last_alive = 0;
  size_t last_bytes = 0;
};

void agents_round_trips(zmq::context_t& ctx, const Config& c, const std::atomic<bool>& recording,
                        const std::atomic<bool>& stop, RoundTrips& out) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  zps::configure_control_socket(s);
  s.connect(c.broker);
  uint64_t id = 1000000;
  std::string last_body;
  while (!stop.load()) {
    const auto t0 = Clock::now();
    ++id;
    zps::send_control(s, "", proto::encode_request(proto::AgentsRequest{}, id));
    bool got = false;
    while (!got && since(t0) < 5.0) {
      zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 100ms);
      while (auto in = zps::recv_control(s, false)) {
        if (in->message.ok() && in->message->is_reply() && in->message->re == id) {
          got = true;
          last_body = std::move(in->body);
        }
      }
    }
    const double ms = since(t0) * 1000;
    if (!got) {
      ++out.timeouts;
    } else if (recording.load()) {
      out.ms.push_back(ms);
    }
    std::this_thread::sleep_until(t0 + std::chrono::milliseconds(c.rt_interval_ms));
  }
  if (!last_body.empty()) {
    out.last_bytes = last_body.size();
    auto e = proto::decode(proto::kSignature.data(), proto::kSignature.size(), last_body.data(),
                           last_body.size());
    if (e.ok()) {
      auto r = e->as<proto::AgentsReply>();
      if (r.ok()) {
        out.last_agents = r->agents.size();
        for (const auto& a : r->agents) out.last_alive += a.alive ? 1 : 0;
      }
    }
  }
}

// Wall times of the real `zpsctl --json agents`, start-up and output included.
void zpsctl_runs(const Config& c, const std::atomic<bool>& recording,
                 const std::atomic<bool>& stop, std::vector<double>& out, uint64_t& failures) {
  const std::string broker_flag = c.broker;
  while (!stop.load()) {
    const auto t0 = Clock::now();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    std::vector<std::string> args = {c.zpsctl, "--broker", broker_flag, "--json", "agents"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, c.zpsctl.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      ++failures;
    } else {
      int status = 0;
      waitpid(pid, &status, 0);
      const double ms = since(t0) * 1000;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        ++failures;
      } else if (recording.load()) {
        out.push_back(ms);
      }
    }
    std::this_thread::sleep_until(t0 + std::chrono::milliseconds(c.zpsctl_interval_ms));
  }
}

void raise_fd_limit(int needed) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
  if (static_cast<int>(r.rlim_cur) < needed) {
    std::fprintf(stderr,
                 "zps_broker_load: warning: the fd limit is %llu, %d agents need about %d "
                 "(raise ulimit -n)\n",
                 static_cast<unsigned long long>(r.rlim_cur), needed / 3, needed);
  }
}

void usage() {
  std::fprintf(stderr,
               "usage: zps_broker_load --broker EP --broker-pid PID [--agents N] [--warmup S] [--quiet S]\n"
               "       [--duration S] [--jobs-per-s R] [--rt-interval-ms MS]\n"
               "       [--zpsctl PATH [--zpsctl-interval-ms MS]] [--io-threads N]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  zps::bench::Args args(argc, argv, [](const std::string&) { usage(); });
  while (auto a = args.next()) {
    if (*a == "--broker") c.broker = args.value();
    else if (*a == "--broker-pid") c.broker_pid = std::stoi(args.value());
    else if (*a == "--agents") c.agents = std::stoi(args.value());
    else if (*a == "--warmup") c.warmup_s = std::stod(args.value());
    else if (*a == "--quiet") c.quiet_s = std::stod(args.value());
    else if (*a == "--duration") c.duration_s = std::stod(args.value());
    else if (*a == "--jobs-per-s") c.jobs_per_s = std::stod(args.value());
    else if (*a == "--rt-interval-ms") c.rt_interval_ms = std::stoi(args.value());
    else if (*a == "--zpsctl") c.zpsctl = args.value();
    else if (*a == "--zpsctl-interval-ms") c.zpsctl_interval_ms = std::stoi(args.value());
    else if (*a == "--io-threads") c.io_threads = std::stoi(args.value());
    else usage();
  }
  if (c.broker.empty() || c.broker_pid <= 0 || c.agents <= 0) usage();
  ::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit(3 * c.agents + 64);

  zmq::context_t ctx(c.io_threads);
  ctx.set(zmq::ctxopt::max_sockets, c.agents + 64);

  Load load(c, ctx);
  load.connect_all();
  const double register_s = load.register_all();
  const uint64_t rss_after_register = status_kib(c.broker_pid, "VmRSS");

  // The broker's CPU share without the measuring traffic (an `agents` reply for 1,000
  // agents is ~200 KB, and the round trips below ask for one 20 times a second): first
  // heartbeats alone, then heartbeats and jobs.
  auto quiet_cpu_pct = [&](bool jobs) {
    const CpuTicks a = cpu_of(c.broker_pid);
    const auto q0 = Clock::now();
    load.run_until(q0 + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(c.quiet_s)),
                   jobs);
    const CpuTicks b = cpu_of(c.broker_pid);
    if (!a.ok || !b.ok) die("cannot read /proc/" + std::to_string(c.broker_pid) + "/stat");
    return 100.0 * static_cast<double>(b.ticks - a.ticks) /
           static_cast<double>(sysconf(_SC_CLK_TCK)) / since(q0);
  };
  double cpu_heartbeats_pct = 0, cpu_jobs_pct = 0;
  if (c.quiet_s > 0) {
    load.run_until(Clock::now() + std::chrono::seconds(1), false);  // registration settles
    cpu_heartbeats_pct = quiet_cpu_pct(false);
    cpu_jobs_pct = quiet_cpu_pct(true);
  }

  std::atomic<bool> recording{false}, stop{false};
  RoundTrips rt;
  std::vector<double> zpsctl_ms;
  uint64_t zpsctl_failures = 0;
  std::thread rt_thread([&] { agents_round_trips(ctx, c, recording, stop, rt); });
  std::thread ctl_thread;
  if (!c.zpsctl.empty()) {
    ctl_thread = std::thread([&] { zpsctl_runs(c, recording, stop, zpsctl_ms, zpsctl_failures); });
  }

  load.run_until(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(c.warmup_s)),
                 true);
  const Counters before = load.n_;
  const size_t jobs_before = load.job_seconds.size();
  const CpuTicks cpu0 = cpu_of(c.broker_pid);
  const CpuTicks self0 = cpu_of(getpid());
  const auto t0 = Clock::now();
  recording.store(true);
  uint64_t rss_max = 0;
  const auto end = t0 + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(c.duration_s));
  while (Clock::now() < end) {
    load.run_until(std::min(end, Clock::now() + 250ms), true);
    rss_max = std::max(rss_max, status_kib(c.broker_pid, "VmRSS"));
  }
  recording.store(false);
  const CpuTicks cpu1 = cpu_of(c.broker_pid);
  const CpuTicks self1 = cpu_of(getpid());
  const double window = since(t0);
  const Counters after = load.n_;
  const uint64_t hwm = status_kib(c.broker_pid, "VmHWM");
  stop.store(true);
  // Keep heartbeats flowing while the measuring threads finish their last round.
  load.run_until(Clock::now() + 600ms, false);
  rt_thread.join();
  if (ctl_thread.joinable()) ctl_thread.join();

  if (!cpu0.ok || !cpu1.ok) die("cannot read /proc/" + std::to_string(c.broker_pid) + "/stat");
  const double cpu_pct = 100.0 * static_cast<double>(cpu1.ticks - cpu0.ticks) /
                         static_cast<double>(sysconf(_SC_CLK_TCK)) / window;
  std::vector<double> window_jobs(load.job_seconds.begin() + static_cast<long>(jobs_before),
                                  load.job_seconds.end());
  for (auto& s : window_jobs) s *= 1000;

  std::printf("agents %d\n", c.agents);
  std::printf("register_s %.3f\n", register_s);
  std::printf("window_s %.2f\n", window);
  std::printf("broker_cpu_pct %.2f\n", cpu_pct);
  std::printf("broker_cpu_heartbeats_only_pct %.2f\n", cpu_heartbeats_pct);
  std::printf("broker_cpu_heartbeats_jobs_pct %.2f\n", cpu_jobs_pct);
  // This process competes with the broker for the same cores.
  std::printf("load_process_cpu_pct %.2f\n",
              100.0 * static_cast<double>(self1.ticks - self0.ticks) /
                  static_cast<double>(sysconf(_SC_CLK_TCK)) / window);
  std::printf("broker_rss_mib %.1f\n", static_cast<double>(rss_max) / 1024);
  std::printf("broker_rss_after_register_mib %.1f\n", static_cast<double>(rss_after_register) / 1024);
  std::printf("broker_hwm_mib %.1f\n", static_cast<double>(hwm) / 1024);
  std::printf("rt_samples %zu\n", rt.ms.size());
  std::printf("rt_timeouts %llu\n", static_cast<unsigned long long>(rt.timeouts));
  std::printf("rt_p50_ms %.3f\n", percentile(rt.ms, 0.50));
  std::printf("rt_p99_ms %.3f\n", percentile(rt.ms, 0.99));
  std::printf("rt_max_ms %.3f\n", percentile(rt.ms, 1.0));
  std::printf("agents_reply_bytes %zu\n", rt.last_bytes);
  std::printf("agents_listed %zu\n", rt.last_agents);
  std::printf("agents_alive %zu\n", rt.last_alive);
  std::printf("zpsctl_samples %zu\n", zpsctl_ms.size());
  std::printf("zpsctl_failures %llu\n", static_cast<unsigned long long>(zpsctl_failures));
  std::printf("zpsctl_p50_ms %.3f\n", percentile(zpsctl_ms, 0.50));
  std::printf("zpsctl_p99_ms %.3f\n", percentile(zpsctl_ms, 0.99));
  std::printf("heartbeats_sent_per_s %.1f\n",
              static_cast<double>(after.heartbeats_sent - before.heartbeats_sent) / window);
  std::printf("heartbeats_received_per_s %.1f\n",
              static_cast<double>(after.heartbeats_received - before.heartbeats_received) / window);
  std::printf("jobs_per_s %.2f\n", static_cast<double>(after.jobs_done - before.jobs_done) / window);
  std::printf("jobs_requested %llu\n", static_cast<unsigned long long>(load.n_.jobs_requested));
  std::printf("jobs_done %llu\n", static_cast<unsigned long long>(load.n_.jobs_done));
  std::printf("jobs_refused %llu\n", static_cast<unsigned long long>(load.n_.jobs_refused));
  std::printf("jobs_failed %llu\n", static_cast<unsigned long long>(load.n_.jobs_failed));
  std::printf("job_cycle_p50_ms %.3f\n", percentile(window_jobs, 0.50));
  std::printf("job_cycle_p99_ms %.3f\n", percentile(window_jobs, 0.99));
  std::printf("replicate_p50_ms %.3f\n", percentile(load.replicate_ms, 0.50));
  std::printf("replicate_p99_ms %.3f\n", percentile(load.replicate_ms, 0.99));
  std::printf("reregisters %llu\n", static_cast<unsigned long long>(load.n_.reregisters));
  std::printf("unexpected %llu\n", static_cast<unsigned long long>(load.n_.unexpected));
  if (!load.n_.first_error.empty()) std::printf("first_error %s\n", load.n_.first_error.c_str());
  std::fflush(stdout);
  return 0;
}
