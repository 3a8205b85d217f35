// Bad peers (issue 5, item 6): while a real transfer runs, strangers connect to the very
// data port the receiver opened for it, and
//   (i)  send garbage: raw bytes that are not ZMTP at all, then ZeroMQ frames of random
//        bytes, some dressed up with the data pipe's magic, and one over the size limit;
//   (ii) send a well-formed stream (data frames, final frame with the right count and
//        hash, and an abort frame) under a wrong token.
// All of it must be refused (the receiver's log says so and why), the real transfer must
// complete without a single failed hop and with the source's guids and files, and the
// receiving agent must stay up and keep receiving.
//
// The real stream goes through a throttling TCP proxy so that it lasts seconds; the
// strangers connect to the receiver's bound address directly, as an attacker would.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xxhash.h>
#include <zmq.hpp>

#include <chrono>
#include <cstring>
#include <iostream>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "shared/pipe.h"
#include "tests/support/cluster.h"
#include "tests/support/replica_check.h"
#include "tests/support/tcp_proxy.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kThrottle = 1536 * 1024;  // bytes/s: the 8 MiB hop takes over 5 s

// The port of the receive session the receiver opened for `snapshot`, from its log line
// "receiving <dataset>@<snapshot> from ... on tcp://127.0.0.2:PORT"; 0 until it shows.
uint16_t session_port(const std::string& log, const std::string& snapshot) {
  static const std::regex re("receiving \\S+@(\\S+) from .* on tcp://[0-9.]+:([0-9]+)");
  uint16_t port = 0;
  for (const auto& line : log_lines_with(log, "receiving ")) {
    std::smatch m;
    if (std::regex_search(line, m, re) && m[1] == snapshot) {
      port = static_cast<uint16_t>(std::stoi(m[2]));
    }
  }
  return port;
}

// Plain TCP, no ZMTP: what a port scanner or a confused client sends.
void send_raw_garbage(uint16_t port, std::mt19937& rng) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string junk(64 * 1024, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    (void)::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
  }
  ::close(fd);
}

zmq::socket_t stranger(zmq::context_t& ctx, uint16_t port) {
  zmq::socket_t s(ctx, zmq::socket_type::push);
  s.set(zmq::sockopt::linger, 2000);
  s.set(zmq::sockopt::sndtimeo, 2000);
  s.connect("tcp://127.0.0.1:" + std::to_string(port));
  return s;
}

// Random frames: some bare noise, some with the pipe's magic and a random kind, one
// empty, one larger than the receiver's ZMQ_MAXMSGSIZE. Returns how many were queued.
int send_garbage_frames(zmq::context_t& ctx, uint16_t port, std::mt19937& rng) {
  zmq::socket_t s = stranger(ctx, port);
  int sent = 0;
  for (int i = 0; i < 200; ++i) {
    std::string f(rng() % 70000, '\0');
    for (auto& c : f) c = static_cast<char>(rng());
    if (i % 2 == 0 && f.size() >= pipe::kHeaderBytes) {
      std::memcpy(f.data(), "ZPD1", 4);
      f[4] = "DFAX"[i % 4];
    }
    if (s.send(zmq::buffer(f), zmq::send_flags::none)) ++sent;
  }
  if (s.send(zmq::buffer(std::string()), zmq::send_flags::none)) ++sent;
  std::string huge(pipe::kMaxFrameBytes + 1, 'Z');
  if (s.send(zmq::buffer(huge), zmq::send_flags::none)) ++sent;
  return sent;
}

// A complete, well-formed stream under a token of our own: data, final (count and hash
// right for what we sent) and an abort that must not abort the real receive.
int send_wrong_token_stream(zmq::context_t& ctx, uint16_t port, std::mt19937& rng) {
  zmq::socket_t s = stranger(ctx, port);
  auto token = pipe::token_from_hex(pipe::make_token());
  EXPECT_TRUE(token.ok());
  XXH3_state_t* h = XXH3_createState();
  XXH3_64bits_reset(h);
  uint64_t seq = 0, total = 0;
  int sent = 0;
  for (; seq < 20; ++seq) {
    std::string f(pipe::kHeaderBytes + 4096, '\0');
    pipe::write_header(f.data(), pipe::FrameKind::kData, *token, seq);
    for (size_t i = pipe::kHeaderBytes; i < f.size(); ++i) f[i] = static_cast<char>(rng());
    XXH3_64bits_update(h, f.data() + pipe::kHeaderBytes, 4096);
    total += 4096;
    if (s.send(zmq::buffer(f), zmq::send_flags::none)) ++sent;
  }
  std::string fin(pipe::kHeaderBytes + 16, '\0');
  pipe::write_header(fin.data(), pipe::FrameKind::kFinal, *token, seq++);
  const uint64_t digest = XXH3_64bits_digest(h);
  XXH3_freeState(h);
  for (int i = 0; i < 8; ++i) {
    fin[pipe::kHeaderBytes + i] = static_cast<char>(total >> (8 * i));
    fin[pipe::kHeaderBytes + 8 + i] = static_cast<char>(digest >> (8 * i));
  }
  if (s.send(zmq::buffer(fin), zmq::send_flags::none)) ++sent;
  const std::string why = "a stranger says stop";
  std::string abort(pipe::kHeaderBytes + why.size(), '\0');
  pipe::write_header(abort.data(), pipe::FrameKind::kAbort, *token, seq);
  std::memcpy(abort.data() + pipe::kHeaderBytes, why.data(), why.size());
  if (s.send(zmq::buffer(abort), zmq::send_flags::none)) ++sent;
  return sent;
}

class BadPeersTest : public ClusterTest {};

TEST_F(BadPeersTest, GarbageAndWrongTokensAreRefusedAndTheRealTransferCompletes) {
  auto src_pool = rig().create_pool("src");
  auto dst_pool = rig().create_pool("dst");
  ASSERT_TRUE(src_pool.ok() && dst_pool.ok());
  start_broker();
  start_agent({"src1", {}, {"--hop-retries", "1"}});  // any failed hop fails the job
  start_agent({"dst1", {*dst_pool + "/backup"}, {"--data-address", "127.0.0.2", "--data-bind",
                                                 "127.0.0.1", "--stall-timeout-ms", "20000"}});
  wait_alive({"src1", "dst1"});
  ProxyOptions po;
  po.port_lo = cluster().data_port_lo("dst1");
  po.port_hi = static_cast<uint16_t>(po.port_lo + Cluster::kDataPortsPerAgent - 1);
  po.rate_bytes_per_s = kThrottle;
  auto proxy = TcpProxy::start(po);
  ASSERT_TRUE(proxy.ok()) << proxy.status().message();

  const std::string src = *src_pool + "/real";
  create_dataset(src);
  write_random_file(src, "big", 8u << 20, 11);
  snapshot(src, "s1");
  write_file(src, "after", "after the bad peers\n");
  snapshot(src, "s2");

  auto ctl = cluster().ctl_async({"replicate", "src1:" + src, "dst1"});
  ASSERT_NE(ctl, nullptr);
  const std::string dst_log = cluster().dir() + "/dst1.log";
  uint16_t port = 0;
  for (auto until = std::chrono::steady_clock::now() + 60s;
       port == 0 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(20ms);
    port = session_port(dst_log, "s1");
  }
  ASSERT_NE(port, 0) << "the receiver never opened a data port for @s1\n" << cluster().logs();
  const pid_t receiver = cluster().agent_pid("dst1");
  // Let the real stream get going (its first MiB through the proxy), so the strangers
  // speak in the middle of it, not before it.
  for (auto until = std::chrono::steady_clock::now() + 60s;
       (*proxy)->bytes_up() < (1u << 20) && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(20ms);
  }

  std::mt19937 rng(5);
  zmq::context_t ctx;
  send_raw_garbage(port, rng);
  const int garbage = send_garbage_frames(ctx, port, rng);
  const int wrong_token = send_wrong_token_stream(ctx, port, rng);
  // The strangers spoke while @s1 was still on its way: the test means something.
  const uint64_t up_then = (*proxy)->bytes_up();
  EXPECT_GE(up_then, 1u << 20) << "the real stream never got going";
  EXPECT_LT(up_then, 7u << 20) << "the real hop was nearly over before the strangers spoke";

  const CtlResult r = Cluster::finish(*ctl);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const auto& h : r.json["hops"]) {
    EXPECT_EQ(h.value("state", ""), "succeeded") << r.describe();
  }
  EXPECT_EQ(r.json["hops"].size(), 2u) << r.describe();
  const std::string dst = *dst_pool + "/backup/src1/" + src;
  EXPECT_EQ(snapshot_difference(rig(), src, dst), "");
  EXPECT_EQ(file_difference(rig(), src, dst), "");
  EXPECT_EQ(partial_receives(rig(), *dst_pool), std::vector<std::string>{});

  // The receiver is the same process, alive, and says what it refused.
  EXPECT_EQ(cluster().agent_pid("dst1"), receiver);
  EXPECT_EQ(::kill(receiver, 0), 0) << "the receiving agent died";
  EXPECT_TRUE(cluster().wait_alive({"dst1"}).ok());
  const auto refused = log_lines_with(dst_log, "refused a frame");
  const auto wrong = log_lines_with(dst_log, "refused a frame (wrong token)");
  const auto summary = log_lines_with(dst_log, "were refused along the way");
  EXPECT_EQ(refused.size(), 2u) << "one line for the garbage, one for the wrong token";
  EXPECT_EQ(wrong.size(), 1u) << "the receiver's log does not mention the wrong token";
  EXPECT_EQ(summary.size(), 1u) << "the receiver's log does not count the refused frames";
  std::cout << "BADPEERS port=" << port << " garbage_frames_sent=" << garbage
            << " wrong_token_frames_sent=" << wrong_token << " real_bytes_before=" << up_then
            << "\n";
  for (const auto& line : refused) std::cout << "  " << line << "\n";
  for (const auto& line : summary) std::cout << "  " << line << "\n";

  // And it keeps receiving: a new snapshot goes over in a new job.
  write_file(src, "later", "later\n");
  snapshot(src, "s3");
  const CtlResult again = cluster().ctl({"replicate", "src1:" + src, "dst1"});
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_EQ(snapshot_difference(rig(), src, dst), "");
}

}  // namespace
}  // namespace zps::test
