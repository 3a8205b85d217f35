// Benchmark 3 of tests/bench/run: the data pipe alone.
//
// Moves BYTES of memory from one process to another over loopback TCP, with the
// product's pipe (zps::pipe::PipeSender -> PipeListener) and with raw libzmq PUSH/PULL
// at the same chunk size and the same queue limits, in plaintext and with CURVE.
//
// Variants (each run forks a receiving child; the parent sends):
//   pipe      PipeSender reads a pipe(2) that a feeder thread fills from memory (as
//             `zfs send` would); PipeListener writes into a pipe that a drain thread
//             empties (as `zfs recv` would). Frames carry token, sequence, XXH3 hash.
//   raw       the same two pipes and threads, with a plain PUSH/PULL in between:
//             read a chunk, send it; receive a chunk, write it. The fair baseline for
//             `pipe` (same copies, same syscalls outside ZeroMQ).
//   rawmem    raw PUSH/PULL from memory to memory, no fds: what libzmq alone can do.
// and the same three with a "-curve" suffix (CURVE keys set before bind/connect; no
// ZAP handler, so every client key is accepted: the handshake cost is per connection
// and irrelevant here, the per-message encryption is what is measured).
//
// Prints one line per run: "variant<TAB>rep<TAB>seconds<TAB>MB/s" (MB = 10^6 bytes);
// the time runs from before connect until the receiving child reports that the last
// byte was written out. Exit status 1 when a run failed (the reason goes to stderr).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <zmq.h>
#include <zmq.hpp>

#include "shared/pipe.h"
#include "tests/bench/args.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  uint64_t bytes = 4ull << 30;
  size_t chunk = zps::pipe::kDefaultChunkBytes;
  int reps = 3;
  int hwm = 16;  // the pipe's default SNDHWM / RCVHWM, also used for raw
  uint16_t port_lo = 47100;
  uint16_t port_hi = 47199;
  std::vector<std::string> variants = {"pipe", "raw", "rawmem", "pipe-curve", "raw-curve",
                                       "rawmem-curve"};
};

struct Keys {
  char server_public[41] = {};
  char server_secret[41] = {};
  char client_public[41] = {};
  char client_secret[41] = {};
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "zps_pipe_bench: %s\n", msg.c_str());
  std::exit(1);
}

constexpr size_t kSourceBytes = 1 << 20;  // what the feeder repeats

std::vector<char> random_block() {
  std::vector<char> block(kSourceBytes);
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= block.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(block.data() + i, &v, 8);
  }
  return block;
}

void grow(int fd, size_t bytes) {
  (void)::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(std::min<size_t>(bytes, 1 << 20)));
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Fills a pipe with `total` bytes from memory, then closes it: the stand-in for zfs send.
std::thread start_feeder(int fd, uint64_t total, const std::vector<char>& block) {
  return std::thread([fd, total, &block] {
    uint64_t left = total;
    while (left > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, block.size()));
      if (!write_all(fd, block.data(), n)) break;
      left -= n;
    }
    ::close(fd);
  });
}

// Empties a pipe until EOF: the stand-in for zfs recv. Counts what it read.
std::thread start_drain(int fd, std::atomic<uint64_t>& got) {
  return std::thread([fd, &got] {
    std::vector<char> buf(1 << 20);
    for (;;) {
      ssize_t r = ::read(fd, buf.data(), buf.size());
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<uint64_t>(r);
    }
    ::close(fd);
  });
}

bool is_curve(const std::string& v) { return v.size() > 6 && v.substr(v.size() - 6) == "-curve"; }
std::string base_of(const std::string& v) { return is_curve(v) ? v.substr(0, v.size() - 6) : v; }

void curve_server(zmq::socket_t& s, const Keys& k) {
  s.set(zmq::sockopt::curve_server, 1);
  s.set(zmq::sockopt::curve_secretkey, std::string(k.server_secret));
}

void curve_client(zmq::socket_t& s, const Keys& k) {
  s.set(zmq::sockopt::curve_serverkey, std::string(k.server_public));
  s.set(zmq::sockopt::curve_publickey, std::string(k.client_public));
  s.set(zmq::sockopt::curve_secretkey, std::string(k.client_secret));
}

zps::pipe::Options pipe_options(const Config& c, const Keys& k, bool curve, bool server) {
  zps::pipe::Options o;
  o.chunk_bytes = c.chunk;
  o.send_hwm = c.hwm;
  o.recv_hwm = c.hwm;
  if (curve) {
    o.configure_socket = [k, server](zmq::socket_t& s) {
      server ? curve_server(s, k) : curve_client(s, k);
      return zps::Status::Ok();
    };
  }
  return o;
}

// Binds the first free port of the range; returns the endpoint.
std::string bind_raw(zmq::socket_t& s, const Config& c) {
  for (uint32_t port = c.port_lo; port <= c.port_hi; ++port) {
    std::string ep = "tcp://127.0.0.1:" + std::to_string(port);
    try {
      s.bind(ep);
      return ep;
    } catch (const zmq::error_t& e) {
      if (e.num() != EADDRINUSE) throw;
    }
  }
  die("no free port in the range");
}

void report(int fd, const std::string& line) {
  std::string l = line + "\n";
  (void)write_all(fd, l.data(), l.size());
}

// ---- The receiving child -------------------------------------------------------------

void run_receiver(const std::string& variant, const Config& c, const Keys& k,
                  const std::string& token, int out) {
  const bool curve = is_curve(variant);
  const std::string base = base_of(variant);
  zmq::context_t ctx(1);
  std::atomic<uint64_t> drained{0};
  int fds[2] = {-1, -1};
  std::thread drain;
  if (base != "rawmem") {
    if (::pipe(fds) != 0) die("pipe failed");
    grow(fds[1], c.chunk);
    drain = start_drain(fds[0], drained);
  }
  if (base == "pipe") {
    auto listener = zps::pipe::PipeListener::bind(ctx, "127.0.0.1", "127.0.0.1", c.port_lo,
                                                  c.port_hi, token,
                                                  pipe_options(c, k, curve, true));
    if (!listener.ok()) die(listener.status().message());
    report(out, "EP " + (*listener)->endpoint());
    std::atomic<bool> cancel{false};
    auto stats = (*listener)->receive_to(fds[1], cancel);
    ::close(fds[1]);
    drain.join();
    if (!stats.ok()) return report(out, "FAIL " + stats.status().message());
    return report(out, "DONE " + std::to_string(drained.load()));
  }
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::rcvhwm, c.hwm);
  pull.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(zps::pipe::kMaxFrameBytes));
  pull.set(zmq::sockopt::linger, 0);
  pull.set(zmq::sockopt::rcvtimeo, 30000);
  if (curve) curve_server(pull, k);
  report(out, "EP " + bind_raw(pull, c));
  uint64_t bytes = 0;
  for (;;) {
    zmq::message_t msg;
    if (!pull.recv(msg, zmq::recv_flags::none)) return report(out, "FAIL no data for 30 s");
    if (msg.size() == 0) break;  // end marker
    bytes += msg.size();
    if (base == "raw" && !write_all(fds[1], static_cast<const char*>(msg.data()), msg.size())) {
      return report(out, "FAIL write");
    }
  }
  if (base == "raw") {
    ::close(fds[1]);
    drain.join();
    bytes = drained.load();
  }
  report(out, "DONE " + std::to_string(bytes));
}

// ---- The sending parent --------------------------------------------------------------

std::string read_line(int fd) {
  std::string line;
  char ch;
  while (true) {
    ssize_t r = ::read(fd, &ch, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || ch == '\n') return line;
    line.push_back(ch);
  }
}

// Reads a whole chunk (or up to EOF) from a pipe: blocking reads, nothing else.
size_t read_chunk(int fd, char* buf, size_t size) {
  size_t got = 0;
  while (got < size) {
    ssize_t r = ::read(fd, buf + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

std::string send_raw(zmq::context_t& ctx, const std::string& base, const std::string& ep,
                     const Config& c, const Keys& k, bool curve, int fd,
                     const std::vector<char>& block) {
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::sndhwm, c.hwm);
  push.set(zmq::sockopt::linger, 5000);
  if (curve) curve_client(push, k);
  push.connect(ep);
  if (base == "rawmem") {
    uint64_t left = c.bytes;
    size_t off = 0;
    while (left > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, c.chunk));
      if (off + n > block.size()) off = 0;
      zmq::message_t msg(block.data() + off, n);  // a copy, as a plain sender makes
      push.send(msg, zmq::send_flags::none);
      off += n;
      left -= n;
    }
  } else {
    for (;;) {
      zmq::message_t msg(c.chunk);
      size_t n = read_chunk(fd, static_cast<char*>(msg.data()), c.chunk);
      if (n == 0) break;
      if (n < c.chunk) {
        zmq::message_t last(msg.data(), n);
        push.send(last, zmq::send_flags::none);
        break;
      }
      push.send(msg, zmq::send_flags::none);
    }
  }
  push.send(zmq::message_t(), zmq::send_flags::none);
  return {};
}

double run_once(const std::string& variant, const Config& c, const Keys& k,
                const std::vector<char>& block) {
  const bool curve = is_curve(variant);
  const std::string base = base_of(variant);
  const std::string token = zps::pipe::make_token();
  int ctl[2];
  if (::pipe(ctl) != 0) die("pipe failed");
  pid_t child = ::fork();
  if (child < 0) die("fork failed");
  if (child == 0) {
    ::close(ctl[0]);
    run_receiver(variant, c, k, token, ctl[1]);
    ::_exit(0);
  }
  ::close(ctl[1]);
  std::string ep = read_line(ctl[0]);
  if (ep.rfind("EP ", 0) != 0) die(variant + ": the receiver did not start: " + ep);
  ep = ep.substr(3);

  zmq::context_t ctx(1);
  int fds[2] = {-1, -1};
  std::thread feeder;
  const auto start = Clock::now();
  if (base != "rawmem") {
    if (::pipe(fds) != 0) die("pipe failed");
    grow(fds[1], c.chunk);
    feeder = start_feeder(fds[1], c.bytes, block);
  }
  std::unique_ptr<zps::pipe::PipeSender> sender;
  if (base == "pipe") {
    auto s = zps::pipe::PipeSender::connect(ctx, ep, token, pipe_options(c, k, curve, false));
    if (!s.ok()) die(s.status().message());
    sender = std::move(*s);
    std::atomic<bool> cancel{false};
    auto stats = sender->stream_from(fds[0], cancel);
    if (!stats.ok()) die(variant + ": " + stats.status().message());
    if (auto st = sender->finish(); !st.ok()) die(variant + ": " + st.message());
  } else {
    send_raw(ctx, base, ep, c, k, curve, fds[0], block);
  }
  std::string done = read_line(ctl[0]);  // the receiver wrote out the last byte
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (feeder.joinable()) feeder.join();
  if (fds[0] >= 0) ::close(fds[0]);
  sender.reset();
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ctl[0]);
  if (done.rfind("DONE ", 0) != 0) die(variant + ": " + done);
  const uint64_t got = std::stoull(done.substr(5));
  if (got != c.bytes) {
    die(variant + ": received " + std::to_string(got) + " bytes of " + std::to_string(c.bytes));
  }
  return seconds;
}

uint64_t parse_size(const std::string& s) {
  size_t pos = 0;
  double v = std::stod(s, &pos);
  std::string unit = s.substr(pos);
  if (unit == "K" || unit == "KiB") v *= 1024;
  else if (unit == "M" || unit == "MiB") v *= 1024 * 1024;
  else if (unit == "G" || unit == "GiB") v *= 1024.0 * 1024 * 1024;
  else if (!unit.empty()) die("bad size " + s);
  return static_cast<uint64_t>(v);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  zps::bench::Args args(argc, argv, [](const std::string& name) { die(name + " needs a value"); });
  while (auto a = args.next()) {
    if (*a == "--bytes") c.bytes = parse_size(args.value());
    else if (*a == "--chunk") c.chunk = parse_size(args.value());
    else if (*a == "--reps") c.reps = std::stoi(args.value());
    else if (*a == "--hwm") c.hwm = std::stoi(args.value());
    else if (*a == "--variants") c.variants = split(args.value());
    else if (*a == "--ports") {
      std::string r = args.value();
      auto dash = r.find('-');
      if (dash == std::string::npos) die("--ports LO-HI");
      c.port_lo = static_cast<uint16_t>(std::stoi(r.substr(0, dash)));
      c.port_hi = static_cast<uint16_t>(std::stoi(r.substr(dash + 1)));
    } else {
      std::fprintf(stderr,
                   "usage: zps_pipe_bench [--bytes N[K|M|G]] [--chunk N[K|M]] [--reps N] "
                   "[--hwm N] [--ports LO-HI] [--variants pipe,raw,rawmem,pipe-curve,...]\n");
      return 2;
    }
  }
  for (const auto& v : c.variants) {
    const std::string b = base_of(v);
    if (b != "pipe" && b != "raw" && b != "rawmem") die("unknown variant " + v);
  }
  ::signal(SIGPIPE, SIG_IGN);
  Keys k;
  if (zmq_curve_keypair(k.server_public, k.server_secret) != 0 ||
      zmq_curve_keypair(k.client_public, k.client_secret) != 0) {
    die("this libzmq has no CURVE support");
  }
  const std::vector<char> block = random_block();
  // Interleaved: rep 1 of every variant, then rep 2, ... so drifting load hits all alike.
  for (int rep = 1; rep <= c.reps; ++rep) {
    for (const auto& v : c.variants) {
      const double s = run_once(v, c, k, block);
      std::printf("%s\t%d\t%.4f\t%.1f\n", v.c_str(), rep, s, static_cast<double>(c.bytes) / s / 1e6);
      std::fflush(stdout);
    }
  }
  return 0;
}
