#include "tests/support/cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "tests/support/cluster_keys.h"
#include "tests/support/paths.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Data ports come from 12000-29999, below the kernel's ephemeral range, in blocks of
// kPortBlock. A cluster holds a lock file on its block for its lifetime, so clusters of
// parallel test programs never share ports (a proxy in front of an agent binds its
// agent's whole range, and must find it free).
constexpr int kFirstPort = 12000;
constexpr int kPortBlock = 400;
constexpr int kPortBlocks = 45;

// Returns the block's first port and keeps its lock in `lock_fd`.
uint16_t reserve_port_block(int& lock_fd) {
  const std::string dir = (std::filesystem::temp_directory_path() / "zps-test-ports").string();
  ::mkdir(dir.c_str(), 0700);
  static int clusters = 0;
  const int start = (getpid() * 7 + clusters++) % kPortBlocks;
  for (int i = 0; i < kPortBlocks; ++i) {
    const int block = (start + i) % kPortBlocks;
    const std::string path = dir + "/block-" + std::to_string(block);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      lock_fd = fd;
      return static_cast<uint16_t>(kFirstPort + block * kPortBlock);
    }
    ::close(fd);
  }
  // Every block taken (or no lock files): share one, as before (an agent skips a taken
  // port; only a proxy may then fail to bind).
  return static_cast<uint16_t>(kFirstPort + start * kPortBlock);
}

// Whether the caller chose its own key (CURVE mode then adds none).
bool has_key_flag(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--key") return true;
  }
  return false;
}

void append(std::vector<std::string>& argv, const std::vector<std::string>& more) {
  argv.insert(argv.end(), more.begin(), more.end());
}

}  // namespace

std::string CtlResult::describe() const {
  return "zpsctl exit " + std::to_string(exit_code) + "\nstdout: " + out + "\nstderr: " + err;
}

Cluster::Cluster(std::string dir, int heartbeat_ms)
    : dir_(std::move(dir)), heartbeat_ms_(heartbeat_ms) {
  port_block_ = reserve_port_block(port_lock_fd_);
  next_port_ = port_block_;
}

Cluster::~Cluster() {
  for (auto& [id, p] : agents_) stop(p, SIGTERM);
  stop(broker_, SIGTERM);
  if (port_lock_fd_ >= 0) ::close(port_lock_fd_);
}

Result<std::unique_ptr<Process>> Cluster::spawn_logged(const std::vector<std::string>& argv,
                                                       const std::string& log) {
  SpawnOptions o;
  o.log_file = log;
  return Process::spawn(argv, o);
}

std::optional<ExitStatus> Cluster::stop(Proc& p, int sig) {
  if (!p.process) return std::nullopt;
  p.process->kill(sig);
  std::optional<ExitStatus> status = p.process->wait_for(10s);
  if (!status) {
    p.process->kill(SIGKILL);
    p.process->wait();
  }
  p.process.reset();
  return status;
}

Status Cluster::start_broker(const std::vector<std::string>& extra_args) {
  broker_extra_ = extra_args;
  const std::string state = dir_ + "/broker";
  const std::string listen = endpoint_.empty() ? "tcp://127.0.0.1:*" : endpoint_;
  std::remove((state + "/endpoint").c_str());
  std::vector<std::string> argv = {bin_path("zps-broker"), "--listen", listen, "--state-dir", state,
                                   "--heartbeat-ms", std::to_string(heartbeat_ms_), "--log-level",
                                   "debug"};
  if (keys_ && !has_key_flag(extra_args)) append(argv, keys_->broker_args());
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  broker_.argv = argv;
  broker_.log = dir_ + "/broker.log";
  auto p = spawn_logged(argv, broker_.log);
  if (!p.ok()) return p.status();
  broker_.process = std::move(*p);
  for (int i = 0; i < 200; ++i) {
    std::string ep = read_file(state + "/endpoint");
    if (!ep.empty() && ep.back() == '\n') {
      ep.pop_back();
      endpoint_ = ep;
      return Status::Ok();
    }
    if (broker_.process->wait_for(50ms)) break;
  }
  return Status(Code::kUnavailable, "zps-broker did not start:\n" + read_file(broker_.log));
}

std::optional<ExitStatus> Cluster::stop_broker(int sig) { return stop(broker_, sig); }

Status Cluster::restart_broker(int sig) {
  stop(broker_, sig);
  // The port may linger for a moment after a kill; the agents reconnect to it.
  Status s;
  for (int i = 0; i < 50; ++i) {
    s = start_broker(broker_extra_);
    if (s.ok()) return s;
    std::this_thread::sleep_for(100ms);
  }
  return s;
}

pid_t Cluster::broker_pid() const { return broker_.process ? broker_.process->pid() : -1; }

Status Cluster::start_agent(const AgentSpec& spec) {
  specs_[spec.id] = spec;
  // Round the block: a restarted agent takes the next range, and an old one's agent is
  // gone by the time its range comes round again.
  if (next_port_ + kDataPortsPerAgent > port_block_ + kPortBlock) next_port_ = port_block_;
  const uint16_t lo = next_port_;
  next_port_ = static_cast<uint16_t>(next_port_ + kDataPortsPerAgent);
  data_port_lo_[spec.id] = lo;
  std::vector<std::string> argv = {bin_path("zps-agent"), "--broker", endpoint_, "--id", spec.id,
                                   "--data-ports",
                                   std::to_string(lo) + "-" +
                                       std::to_string(lo + kDataPortsPerAgent - 1),
                                   "--zfs-log", dir_ + "/" + spec.id + ".zfs.log",
                                   "--log-level", "debug"};
  for (const auto& r : spec.recv_roots) {
    argv.push_back("--recv-root");
    argv.push_back(r);
  }
  if (keys_ && !has_key_flag(spec.extra_args)) append(argv, keys_->agent_args(spec.id));
  argv.insert(argv.end(), spec.extra_args.begin(), spec.extra_args.end());
  Proc& p = agents_[spec.id];
  p.argv = argv;
  p.log = dir_ + "/" + spec.id + ".log";
  auto proc = spawn_logged(argv, p.log);
  if (!proc.ok()) return proc.status();
  p.process = std::move(*proc);
  return Status::Ok();
}

void Cluster::stop_agent(const std::string& id, int sig) {
  auto it = agents_.find(id);
  if (it != agents_.end()) stop(it->second, sig);
}

Status Cluster::restart_agent(const std::string& id) {
  stop_agent(id, SIGTERM);
  // Reuse the same argv (and so the same data port range).
  Proc& p = agents_[id];
  auto proc = spawn_logged(p.argv, p.log);
  if (!proc.ok()) return proc.status();
  p.process = std::move(*proc);
  return Status::Ok();
}

pid_t Cluster::agent_pid(const std::string& id) const {
  auto it = agents_.find(id);
  return it == agents_.end() || !it->second.process ? -1 : it->second.process->pid();
}

uint16_t Cluster::data_port_lo(const std::string& id) const {
  auto it = data_port_lo_.find(id);
  return it == data_port_lo_.end() ? 0 : it->second;
}

std::vector<std::string> Cluster::zfs_commands(const std::string& id) const {
  std::vector<std::string> out;
  std::ifstream in(dir_ + "/" + id + ".zfs.log");
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

Status Cluster::wait_alive(const std::vector<std::string>& ids, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (std::chrono::steady_clock::now() < until) {
    CtlResult r = ctl({"agents"}, true, 10s);
    if (r.exit_code == 0 && r.json.is_array()) {
      size_t alive = 0;
      for (const auto& id : ids) {
        for (const auto& a : r.json) {
          if (a.value("id", "") == id && a.value("alive", false)) ++alive;
        }
      }
      if (alive == ids.size()) return Status::Ok();
    }
    last = r.describe();
    std::this_thread::sleep_for(100ms);
  }
  return Status(Code::kTimeout, "agents not alive in time; last answer: " + last);
}

Status Cluster::wait_dead(const std::string& id, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    CtlResult r = ctl({"agents"}, true, 10s);
    if (r.exit_code == 0 && r.json.is_array()) {
      for (const auto& a : r.json) {
        if (a.value("id", "") == id && !a.value("alive", true)) return Status::Ok();
      }
    }
    std::this_thread::sleep_for(100ms);
  }
  return Status(Code::kTimeout, "agent " + id + " still shown alive");
}

std::unique_ptr<Process> Cluster::ctl_async(const std::vector<std::string>& args, bool json) {
  std::vector<std::string> argv = {bin_path("zpsctl"), "--broker", endpoint_};
  if (json) argv.push_back("--json");
  if (keys_ && !has_key_flag(args)) append(argv, keys_->ctl_args());
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions o;
  o.pipe_stdout = true;
  o.stderr_limit = 1 << 20;
  auto p = Process::spawn(argv, o);
  return p.ok() ? std::move(*p) : nullptr;
}

CtlResult Cluster::finish(Process& p, bool json) {
  CtlResult r;
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = read(p.stdout_fd(), buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  ExitStatus st = p.wait();
  r.exit_code = st.signal ? 128 + st.signal : st.code;
  r.out = out;
  r.err = p.stderr_text();
  if (json) r.json = nlohmann::json::parse(out, nullptr, false);
  if (r.json.is_discarded()) r.json = nullptr;
  return r;
}

CtlResult Cluster::ctl(const std::vector<std::string>& args, bool json, std::chrono::seconds timeout) {
  std::vector<std::string> argv = {bin_path("zpsctl"), "--broker", endpoint_};
  if (json) argv.push_back("--json");
  if (keys_ && !has_key_flag(args)) append(argv, keys_->ctl_args());
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions o;
  o.timeout = timeout;
  o.stderr_limit = 1 << 20;
  CtlResult r;
  auto out = run(argv, o);
  if (!out.ok()) {
    r.err = out.status().message();
    return r;
  }
  r.exit_code = out->status.signal ? 128 + out->status.signal : out->status.code;
  r.out = out->out;
  r.err = out->err;
  if (json) r.json = nlohmann::json::parse(r.out, nullptr, false);
  if (r.json.is_discarded()) r.json = nullptr;
  return r;
}

Status Cluster::enable_curve(const std::vector<std::string>& agents) {
  auto keys = ClusterKeys::create(dir_, agents);
  if (!keys.ok()) return keys.status();
  keys_ = std::make_unique<ClusterKeys>(std::move(*keys));
  return Status::Ok();
}

std::string Cluster::logs() const {
  std::string out = "---- broker.log\n" + read_file(broker_.log);
  for (const auto& [id, p] : agents_) out += "---- " + id + ".log\n" + read_file(p.log);
  return out;
}

void ClusterTest::SetUp() {
  ZfsTest::SetUp();
  if (IsSkipped() || HasFatalFailure()) return;
  cluster_ = std::make_unique<Cluster>(rig().dir());
}

void ClusterTest::TearDown() {
  if (cluster_) {
    if (HasFailure()) std::cerr << cluster_->logs();
    cluster_.reset();
  }
  ZfsTest::TearDown();
}

void ClusterTest::start_broker(const std::vector<std::string>& extra) {
  if (Status s = cluster_->start_broker(extra); !s.ok()) throw RigError(s.message());
}

void ClusterTest::start_agent(const AgentSpec& spec) {
  if (Status s = cluster_->start_agent(spec); !s.ok()) throw RigError(s.message());
}

void ClusterTest::wait_alive(const std::vector<std::string>& ids) {
  if (Status s = cluster_->wait_alive(ids); !s.ok()) throw RigError(s.message() + "\n" + cluster_->logs());
}

}  // namespace zps::test
