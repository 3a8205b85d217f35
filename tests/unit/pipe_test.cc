#include "shared/pipe.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace zps::pipe {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr size_t kMiB = 1024 * 1024;
constexpr uint16_t kPortsPerProcess = 50;

// ctest runs every case in its own process: a range per pid keeps parallel runs apart.
uint16_t port_base() { return static_cast<uint16_t>(40000 + (getpid() % 190) * kPortsPerProcess); }

std::string random_bytes(size_t n, uint64_t seed = 42) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

milliseconds since(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t);
}

Options fast_options() {
  Options o;
  o.chunk_bytes = 64 * 1024;  // several frames even for small test streams
  o.stall_timeout = milliseconds(3000);
  o.heartbeat_interval = milliseconds(200);
  o.linger = milliseconds(200);
  return o;
}

// The read end of a pipe that a thread fills with `data` and then closes.
class Feeder {
 public:
  explicit Feeder(std::string data) : data_(std::move(data)) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    writer_ = std::thread([this] {
      size_t off = 0;
      while (off < data_.size()) {
        ssize_t n = ::write(write_fd_, data_.data() + off, data_.size() - off);
        if (n <= 0) break;  // the reader went away
        off += static_cast<size_t>(n);
      }
      ::close(write_fd_);
    });
  }
  ~Feeder() {
    ::close(read_fd_);  // unblocks a writer whose reader failed early
    writer_.join();
  }
  int fd() const { return read_fd_; }

 private:
  std::string data_;
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::thread writer_;
};

// The write end of a pipe whose contents a thread collects.
class Collector {
 public:
  Collector() {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    reader_ = std::thread([this] {
      char buf[64 * 1024];
      for (;;) {
        ssize_t n = ::read(read_fd_, buf, sizeof buf);
        if (n <= 0) break;
        data_.append(buf, static_cast<size_t>(n));
      }
      ::close(read_fd_);
    });
  }
  ~Collector() { finish(); }
  int fd() const { return write_fd_; }
  // Closes the write end and returns everything that arrived.
  const std::string& finish() {
    if (write_fd_ >= 0) {
      ::close(write_fd_);
      write_fd_ = -1;
      reader_.join();
    }
    return data_;
  }

 private:
  std::string data_;
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::thread reader_;
};

// A raw PUSH socket that crafts frames, as a buggy sender or a stranger would.
class RawPusher {
 public:
  RawPusher(zmq::context_t& ctx, const std::string& endpoint) : socket_(ctx, zmq::socket_type::push) {
    socket_.set(zmq::sockopt::immediate, 1);
    socket_.set(zmq::sockopt::sndtimeo, 3000);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }
  bool send_bytes(std::string_view bytes) {
    return socket_.send(zmq::buffer(bytes.data(), bytes.size()), zmq::send_flags::none).has_value();
  }
  bool send(FrameKind kind, std::string_view token, uint64_t seq, std::string_view payload) {
    std::string frame(kHeaderBytes, '\0');
    write_header(frame.data(), kind, token, seq);
    frame.append(payload);
    return send_bytes(frame);
  }
  bool send_final(std::string_view token, uint64_t seq, uint64_t bytes, uint64_t hash) {
    std::string payload(16, '\0');
    for (int i = 0; i < 8; ++i) {
      payload[i] = static_cast<char>(bytes >> (8 * i));
      payload[8 + i] = static_cast<char>(hash >> (8 * i));
    }
    return send(FrameKind::kFinal, token, seq, payload);
  }

 private:
  zmq::socket_t socket_;
};

uint64_t xxh3(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }

class PipeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  std::unique_ptr<PipeListener> listen(const Options& options = fast_options()) {
    auto l = PipeListener::bind(ctx_, "127.0.0.1", "127.0.0.1", port_base(),
                                port_base() + kPortsPerProcess - 1, token_hex_, options);
    EXPECT_TRUE(l.ok()) << l.status().to_string();
    return l.ok() ? std::move(l).value() : nullptr;
  }

  // The whole sender side of a hop: connect, stream, finish. The sender stays alive
  // until the test ends, as the agent keeps it until the receiver reports back.
  Result<Stats> send_all(const std::string& endpoint, int fd,
                         const Options& options = fast_options()) {
    auto sender = PipeSender::connect(ctx_, endpoint, token_hex_, options);
    if (!sender.ok()) return sender.status();
    senders_.push_back(std::move(sender).value());
    std::atomic<bool> cancel{false};
    Result<Stats> stats = senders_.back()->stream_from(fd, cancel);
    if (!stats.ok()) return stats;
    ZPS_RETURN_IF_ERROR(senders_.back()->finish());
    return stats;
  }

  // Runs a receive in a thread; join with result().
  class Receive {
   public:
    Receive(PipeListener& l, int fd, std::atomic<bool>& cancel)
        : thread_([this, &l, fd, &cancel] { result_ = l.receive_to(fd, cancel); }) {}
    ~Receive() {
      if (thread_.joinable()) thread_.join();
    }
    const Result<Stats>& result() {
      if (thread_.joinable()) thread_.join();
      return result_;
    }

   private:
    Result<Stats> result_ = Status(Code::kInternal, "not run");
    std::thread thread_;
  };

  zmq::context_t ctx_;  // first member: outlives every socket of the test
  std::string token_hex_ = make_token();
  std::string token_ = token_from_hex(token_hex_).value();
  std::vector<std::unique_ptr<PipeSender>> senders_;
};

TEST_F(PipeTest, RandomBytesArriveIdentically) {
  const std::string data = random_bytes(5 * kMiB + 12345);
  auto listener = listen();
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  std::vector<uint64_t> progress;
  Result<Stats> received = Status(Code::kInternal, "not run");
  std::thread rx([&] {
    received = listener->receive_to(out.fd(), cancel, [&](uint64_t b) { progress.push_back(b); });
  });
  Feeder in(data);
  Result<Stats> sent = send_all(listener->endpoint(), in.fd());
  rx.join();
  ASSERT_TRUE(sent.ok()) << sent.status().to_string();
  ASSERT_TRUE(received.ok()) << received.status().to_string();
  EXPECT_TRUE(out.finish() == data) << "payload differs";
  EXPECT_EQ(sent->bytes, data.size());
  EXPECT_EQ(received->bytes, data.size());
  EXPECT_EQ(sent->hash, xxh3(data));
  EXPECT_EQ(received->hash, xxh3(data));
  EXPECT_EQ(received->frames, sent->frames);
  EXPECT_EQ(received->refused_frames, 0u);
  EXPECT_LE(progress.size(), static_cast<size_t>(received->seconds / 0.09) + 1);
  for (size_t i = 1; i < progress.size(); ++i) EXPECT_GE(progress[i], progress[i - 1]);
}

TEST_F(PipeTest, EmptyStream) {
  auto listener = listen();
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  Feeder in("");
  Result<Stats> sent = send_all(listener->endpoint(), in.fd());
  ASSERT_TRUE(sent.ok()) << sent.status().to_string();
  ASSERT_TRUE(rx.result().ok()) << rx.result().status().to_string();
  EXPECT_EQ(rx.result()->bytes, 0u);
  EXPECT_EQ(rx.result()->hash, xxh3(""));
  EXPECT_EQ(out.finish(), "");
}

// A producer slower than the stall timeout must still get through: partial chunks are
// flushed and silence is covered by keepalive frames.
TEST_F(PipeTest, SlowProducerIsNotAStall) {
  Options o = fast_options();
  o.stall_timeout = milliseconds(600);
  o.heartbeat_interval = milliseconds(100);
  auto listener = listen(o);
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::thread producer([w = fds[1]] {
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(::write(w, "tick", 4), 4);
      std::this_thread::sleep_for(milliseconds(700));
    }
    ::close(w);
  });
  Result<Stats> sent = send_all(listener->endpoint(), fds[0], o);
  producer.join();
  ::close(fds[0]);
  ASSERT_TRUE(sent.ok()) << sent.status().to_string();
  ASSERT_TRUE(rx.result().ok()) << rx.result().status().to_string();
  EXPECT_EQ(out.finish(), "tick" "tick" "tick");
}

// `zfs recv` may block for a while (a txg sync); with a full receive queue libzmq stops
// reading the connection, so not even heartbeats get through. That must not break the
// stream as long as it stays shorter than the stall timeout.
TEST_F(PipeTest, SlowConsumerIsNotAStall) {
  const std::string data = random_bytes(16 * kMiB);
  Options o = fast_options();
  o.heartbeat_interval = milliseconds(100);
  o.stall_timeout = milliseconds(3000);
  auto listener = listen(o);
  ASSERT_TRUE(listener);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string got;
  std::thread consumer([&got, r = fds[0]] {
    std::this_thread::sleep_for(milliseconds(1500));
    char buf[65536];
    ssize_t n;
    while ((n = ::read(r, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    ::close(r);
  });
  std::atomic<bool> cancel{false};
  Receive rx(*listener, fds[1], cancel);
  Feeder in(data);
  Result<Stats> sent = send_all(listener->endpoint(), in.fd(), o);
  Result<Stats> received = rx.result();
  ::close(fds[1]);
  consumer.join();
  ASSERT_TRUE(received.ok()) << received.status().to_string() << " / sender: "
                             << sent.status().to_string();
  ASSERT_TRUE(sent.ok()) << sent.status().to_string();
  EXPECT_TRUE(got == data);
}

TEST_F(PipeTest, WrongTokenFramesAreRefused) {
  const std::string data = random_bytes(2 * kMiB);
  auto listener = listen();
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  // A stranger that knows the format but not the token, with plausible sequence numbers.
  RawPusher stranger(ctx_, listener->endpoint());
  std::string other = token_from_hex(make_token()).value();
  for (uint64_t seq = 0; seq < 10; ++seq) {
    ASSERT_TRUE(stranger.send(FrameKind::kData, other, seq, "evil"));
  }
  ASSERT_TRUE(stranger.send_final(other, 10, 40, 0));
  std::this_thread::sleep_for(milliseconds(100));
  Feeder in(data);
  Result<Stats> sent = send_all(listener->endpoint(), in.fd());
  ASSERT_TRUE(sent.ok()) << sent.status().to_string();
  ASSERT_TRUE(rx.result().ok()) << rx.result().status().to_string();
  EXPECT_GT(rx.result()->refused_frames, 0u);
  EXPECT_TRUE(out.finish() == data);
}

TEST_F(PipeTest, GarbageFramesAreDropped) {
  const std::string data = random_bytes(kMiB + 7);
  auto listener = listen();
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  RawPusher stranger(ctx_, listener->endpoint());
  std::string bad_kind(kHeaderBytes, '\0');
  write_header(bad_kind.data(), FrameKind::kData, token_, 0);
  bad_kind[4] = 'X';  // right token, unknown kind
  for (std::string_view g : {std::string_view(""), std::string_view("ZPD1"),
                             std::string_view(bad_kind)}) {
    ASSERT_TRUE(stranger.send_bytes(g));
  }
  for (size_t n : {1, 31, 32, 33, 1000, 70000}) {
    ASSERT_TRUE(stranger.send_bytes(random_bytes(n, n)));
  }
  std::this_thread::sleep_for(milliseconds(100));
  Feeder in(data);
  Result<Stats> sent = send_all(listener->endpoint(), in.fd());
  ASSERT_TRUE(sent.ok()) << sent.status().to_string();
  ASSERT_TRUE(rx.result().ok()) << rx.result().status().to_string();
  EXPECT_GE(rx.result()->refused_frames, 9u);
  EXPECT_TRUE(out.finish() == data);
}

TEST_F(PipeTest, GapIsAProtocolError) {
  auto listener = listen();
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  RawPusher sender(ctx_, listener->endpoint());
  ASSERT_TRUE(sender.send(FrameKind::kData, token_, 0, "abc"));
  ASSERT_TRUE(sender.send(FrameKind::kData, token_, 2, "def"));
  const Result<Stats>& r = rx.result();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kProtocol);
  EXPECT_EQ(r.status().message(), "gap in the stream: expected frame 1, got 2");
}

TEST_F(PipeTest, BadHashIsAProtocolError) {
  auto listener = listen();
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  RawPusher sender(ctx_, listener->endpoint());
  ASSERT_TRUE(sender.send(FrameKind::kData, token_, 0, "hello"));
  ASSERT_TRUE(sender.send_final(token_, 1, 5, xxh3("hellO")));
  ASSERT_FALSE(rx.result().ok());
  EXPECT_EQ(rx.result().status().code(), Code::kProtocol);
  EXPECT_NE(rx.result().status().message().find("stream hash mismatch"), std::string::npos)
      << rx.result().status().message();
}

TEST_F(PipeTest, ByteCountMismatchIsAProtocolError) {
  auto listener = listen();
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  RawPusher sender(ctx_, listener->endpoint());
  ASSERT_TRUE(sender.send(FrameKind::kData, token_, 0, "hello"));
  ASSERT_TRUE(sender.send_final(token_, 1, 6, xxh3("hello")));
  ASSERT_FALSE(rx.result().ok());
  EXPECT_EQ(rx.result().status().code(), Code::kProtocol);
  EXPECT_NE(rx.result().status().message().find("byte count mismatch"), std::string::npos)
      << rx.result().status().message();
}

TEST_F(PipeTest, AbortFrameCarriesTheReason) {
  auto listener = listen();
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  auto sender = PipeSender::connect(ctx_, listener->endpoint(), token_hex_, fast_options());
  ASSERT_TRUE(sender.ok()) << sender.status().to_string();
  Feeder in(random_bytes(100000));
  ASSERT_TRUE((*sender)->stream_from(in.fd(), cancel).ok());
  (*sender)->send_abort("zfs send exited with status 1: dataset is busy");
  ASSERT_FALSE(rx.result().ok());
  EXPECT_EQ(rx.result().status().code(), Code::kProtocol);
  EXPECT_EQ(rx.result().status().message(),
            "sender aborted: zfs send exited with status 1: dataset is busy");
}

TEST_F(PipeTest, LongAbortReasonIsTruncated) {
  auto listener = listen();
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  auto sender = PipeSender::connect(ctx_, listener->endpoint(), token_hex_, fast_options());
  ASSERT_TRUE(sender.ok());
  std::string reason = std::string(1023, 'x') + "\xc3\xa9" + std::string(100, 'y');  // é at 1023
  (*sender)->send_abort(reason);
  ASSERT_FALSE(rx.result().ok());
  EXPECT_EQ(rx.result().status().message(), "sender aborted: " + std::string(1023, 'x'));
}

TEST_F(PipeTest, StallTimesOut) {
  Options o = fast_options();
  o.stall_timeout = milliseconds(500);
  auto listener = listen(o);
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  RawPusher sender(ctx_, listener->endpoint());
  ASSERT_TRUE(sender.send(FrameKind::kData, token_, 0, "first and last"));
  auto sent_at = Clock::now();
  ASSERT_FALSE(rx.result().ok());
  EXPECT_EQ(rx.result().status().code(), Code::kTimeout);
  EXPECT_EQ(rx.result().status().message(), "no data for 0.5 s (stalled)");
  EXPECT_GE(since(sent_at), milliseconds(350));
  EXPECT_LE(since(sent_at), milliseconds(1200));
  EXPECT_EQ(out.finish(), "first and last");
}

TEST_F(PipeTest, StallReportsRefusedFrames) {
  Options o = fast_options();
  o.stall_timeout = milliseconds(500);
  auto listener = listen(o);
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  RawPusher stranger(ctx_, listener->endpoint());
  std::string other = token_from_hex(make_token()).value();
  // Refused frames keep coming but must not count as progress.
  auto until = Clock::now() + milliseconds(1500);
  uint64_t seq = 0;
  while (Clock::now() < until && stranger.send(FrameKind::kData, other, seq++, "x")) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_FALSE(rx.result().ok());
  EXPECT_EQ(rx.result().status().code(), Code::kTimeout);
  EXPECT_NE(rx.result().status().message().find("no data for 0.5 s (stalled); refused "),
            std::string::npos)
      << rx.result().status().message();
  EXPECT_NE(rx.result().status().message().find(" frames with a bad token or header"),
            std::string::npos);
}

TEST_F(PipeTest, CancelStopsReceive) {
  auto listener = listen();
  ASSERT_TRUE(listener);
  Collector out;
  std::atomic<bool> cancel{false};
  Receive rx(*listener, out.fd(), cancel);
  std::this_thread::sleep_for(milliseconds(200));
  auto cancelled_at = Clock::now();
  cancel = true;
  ASSERT_FALSE(rx.result().ok());
  EXPECT_EQ(rx.result().status().code(), Code::kCancelled);
  EXPECT_LE(since(cancelled_at), milliseconds(300));
}

TEST_F(PipeTest, CancelStopsSenderBlockedOnAFullQueue) {
  auto listener = listen();  // never reads
  ASSERT_TRUE(listener);
  int zero = ::open("/dev/zero", O_RDONLY);
  ASSERT_GE(zero, 0);
  auto sender = PipeSender::connect(ctx_, listener->endpoint(), token_hex_, fast_options());
  ASSERT_TRUE(sender.ok());
  std::atomic<bool> cancel{false};
  Result<Stats> r = Status(Code::kInternal, "not run");
  std::thread tx([&] { r = (*sender)->stream_from(zero, cancel); });
  std::this_thread::sleep_for(milliseconds(800));  // long enough to fill every buffer
  auto cancelled_at = Clock::now();
  cancel = true;
  tx.join();
  ::close(zero);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCancelled);
  EXPECT_LE(since(cancelled_at), milliseconds(300));
}

TEST_F(PipeTest, CancelStopsSenderWaitingForInput) {
  auto listener = listen();
  ASSERT_TRUE(listener);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);  // nobody ever writes
  auto sender = PipeSender::connect(ctx_, listener->endpoint(), token_hex_, fast_options());
  ASSERT_TRUE(sender.ok());
  std::atomic<bool> cancel{false};
  Result<Stats> r = Status(Code::kInternal, "not run");
  std::thread tx([&] { r = (*sender)->stream_from(fds[0], cancel); });
  std::this_thread::sleep_for(milliseconds(500));
  auto cancelled_at = Clock::now();
  cancel = true;
  tx.join();
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCancelled);
  EXPECT_LE(since(cancelled_at), milliseconds(300));
}

TEST_F(PipeTest, ClosedOutputIsAnIoError) {
  auto listener = listen();
  ASSERT_TRUE(listener);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);  // `zfs recv` died
  std::atomic<bool> cancel{false};
  Receive rx(*listener, fds[1], cancel);
  Feeder in(random_bytes(kMiB));
  Result<Stats> sent = send_all(listener->endpoint(), in.fd());
  ASSERT_FALSE(rx.result().ok());
  ::close(fds[1]);
  EXPECT_EQ(rx.result().status().code(), Code::kIoError);
  EXPECT_NE(rx.result().status().message().find("EPIPE"), std::string::npos)
      << rx.result().status().message();
}

TEST_F(PipeTest, SenderTimesOutWhenTheReceiverDoesNotRead) {
  Options o = fast_options();
  o.stall_timeout = milliseconds(500);
  o.linger = milliseconds(0);
  auto listener = listen(o);  // never reads
  ASSERT_TRUE(listener);
  int zero = ::open("/dev/zero", O_RDONLY);
  ASSERT_GE(zero, 0);
  auto sender = PipeSender::connect(ctx_, listener->endpoint(), token_hex_, o);
  ASSERT_TRUE(sender.ok());
  std::atomic<bool> cancel{false};
  auto start = Clock::now();
  Result<Stats> r = (*sender)->stream_from(zero, cancel);
  ::close(zero);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_NE(r.status().message().find("receiver stopped reading"), std::string::npos)
      << r.status().message();
  EXPECT_LE(since(start), milliseconds(5000));
}

TEST_F(PipeTest, SenderTimesOutWhenTheReceiverIsUnreachable) {
  Options o = fast_options();
  o.stall_timeout = milliseconds(400);
  std::string endpoint;
  {
    auto gone = listen(o);
    ASSERT_TRUE(gone);
    endpoint = gone->endpoint();
  }
  // libzmq closes the listening socket in its I/O thread, a moment after zmq_close.
  std::this_thread::sleep_for(milliseconds(200));
  auto sender = PipeSender::connect(ctx_, endpoint, token_hex_, o);
  ASSERT_TRUE(sender.ok());
  Feeder in("some data");
  std::atomic<bool> cancel{false};
  Result<Stats> r = (*sender)->stream_from(in.fd(), cancel);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_EQ(r.status().message(), "could not reach the receiver at " + endpoint + " for 0.4 s");
}

TEST_F(PipeTest, PortRangeIsSharedAndExhausted) {
  // Ports in the range may be taken by other programs: look for two free neighbours.
  for (uint16_t p = port_base(); p + 1 < port_base() + kPortsPerProcess; p += 2) {
    auto a = PipeListener::bind(ctx_, "127.0.0.1", "node2", p, p + 1, token_hex_);
    auto b = PipeListener::bind(ctx_, "127.0.0.1", "node2", p, p + 1, token_hex_);
    if (!a.ok() || !b.ok()) continue;
    EXPECT_NE((*a)->port(), (*b)->port());
    EXPECT_EQ((*a)->endpoint(), "tcp://node2:" + std::to_string((*a)->port()));
    auto c = PipeListener::bind(ctx_, "127.0.0.1", "node2", p, p + 1, token_hex_);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), Code::kUnavailable);
    EXPECT_EQ(c.status().message(), "no free data port in " + std::to_string(p) + "-" +
                                        std::to_string(p + 1) + " on 127.0.0.1");
    return;
  }
  FAIL() << "no two free neighbouring ports from " << port_base();
}

TEST_F(PipeTest, BindRefusesBadArguments) {
  EXPECT_EQ(PipeListener::bind(ctx_, "127.0.0.1", "x", 100, 99, token_hex_).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(PipeListener::bind(ctx_, "127.0.0.1", "x", port_base(), port_base(), "nothex")
                .status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(PipeListener::bind(ctx_, "not an address", "x", port_base(), port_base(),
                               token_hex_).status().code(),
            Code::kIoError);
  Options huge;
  huge.chunk_bytes = kMaxFrameBytes;
  EXPECT_EQ(PipeSender::connect(ctx_, "tcp://127.0.0.1:1", token_hex_, huge).status().code(),
            Code::kInvalidArgument);
}

TEST(PipeTokenTest, TokensAreFreshLowercaseHex) {
  std::string a = make_token();
  std::string b = make_token();
  EXPECT_NE(a, b);
  ASSERT_EQ(a.size(), 32u);
  for (char c : a) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << a;
  auto raw = token_from_hex(a);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->size(), kTokenBytes);
  EXPECT_EQ(static_cast<unsigned char>((*raw)[0]), std::stoul(a.substr(0, 2), nullptr, 16));
}

TEST(PipeTokenTest, TokenFromHexValidates) {
  EXPECT_TRUE(token_from_hex("00112233445566778899aabbccddeeff").ok());
  EXPECT_TRUE(token_from_hex("00112233445566778899AABBCCDDEEFF").ok());
  for (std::string_view bad : {"", "0011", "00112233445566778899aabbccddeeff00",
                               "00112233445566778899aabbccddeefg",
                               "00112233445566778899aabbccddee f"}) {
    auto r = token_from_hex(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  }
}

// ---- parse_frame --------------------------------------------------------------------

std::string frame(char kind, std::string_view token, uint64_t seq, std::string_view payload) {
  std::string f(kHeaderBytes, '\0');
  write_header(f.data(), FrameKind::kData, token, seq);
  f[4] = kind;
  f.append(payload);
  return f;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

TEST(ParseFrameTest, Table) {
  const std::string token = "0123456789abcdef";
  struct Case {
    const char* name;
    std::string bytes;
    bool ok;
  };
  std::string bad_magic = frame('D', token, 0, "x");
  bad_magic[3] = '2';
  std::string reserved = frame('D', token, 0, "x");
  reserved[6] = 1;
  const Case cases[] = {
      {"empty", "", false},
      {"truncated header", frame('D', token, 0, "").substr(0, 31), false},
      {"bad magic", bad_magic, false},
      {"reserved bytes set", reserved, false},
      {"unknown kind", frame('Q', token, 0, "x"), false},
      {"final with short payload", frame('F', token, 3, le64(5)), false},
      {"final with long payload", frame('F', token, 3, le64(5) + le64(6) + "x"), false},
      {"abort reason too long", frame('A', token, 3, std::string(1025, 'r')), false},
      {"empty data frame", frame('D', token, 0, ""), true},
      {"data frame", frame('D', token, 7, "payload"), true},
      {"final frame", frame('F', token, 9, le64(5) + le64(0xfeedface12345678)), true},
      {"abort frame", frame('A', token, 4, "disk full"), true},
  };
  for (const Case& c : cases) {
    auto r = parse_frame(c.bytes.data(), c.bytes.size());
    EXPECT_EQ(r.ok(), c.ok) << c.name;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kProtocol) << c.name;
    }
  }
}

TEST(ParseFrameTest, FieldsOfValidFrames) {
  const std::string token = "0123456789abcdef";
  std::string d = frame('D', token, 0x0102030405060708, "payload");
  auto data = parse_frame(d.data(), d.size());
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->kind, FrameKind::kData);
  EXPECT_EQ(data->token, token);
  EXPECT_EQ(data->seq, 0x0102030405060708u);
  EXPECT_EQ(data->payload, "payload");

  std::string f = frame('F', token, 9, le64(5) + le64(0xfeedface12345678));
  auto fin = parse_frame(f.data(), f.size());
  ASSERT_TRUE(fin.ok());
  EXPECT_EQ(fin->kind, FrameKind::kFinal);
  EXPECT_EQ(fin->total_bytes, 5u);
  EXPECT_EQ(fin->hash, 0xfeedface12345678u);

  std::string a = frame('A', token, 4, "disk full");
  auto ab = parse_frame(a.data(), a.size());
  ASSERT_TRUE(ab.ok());
  EXPECT_EQ(ab->kind, FrameKind::kAbort);
  EXPECT_EQ(ab->payload, "disk full");
}

TEST(ParseFrameTest, SurvivesArbitraryBytes) {
  EXPECT_FALSE(parse_frame(nullptr, 0).ok());
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = random_bytes(rng() % 80, rng());
    if (i % 2 == 0 && bytes.size() >= 5) {  // get past the magic check half the time
      std::memcpy(bytes.data(), "ZPD1", 4);
      bytes[4] = "DFA"[rng() % 3];
    }
    // Exact-size heap copy so a sanitizer catches any read past the end.
    std::vector<char> exact(bytes.begin(), bytes.end());
    (void)parse_frame(exact.data(), exact.size());
  }
}

}  // namespace
}  // namespace zps::pipe
