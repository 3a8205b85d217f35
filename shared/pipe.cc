#include "shared/pipe.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/random.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <xxhash.h>
#if defined(__x86_64__) && __has_include(<xxh_x86dispatch.h>)
// Picks AVX2/AVX-512 at run time (the library's default build is SSE2 only): about 1.7x
// faster here, and the hash is a fair share of the pipe's CPU time. Same hash values.
#include <xxh_x86dispatch.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

namespace zps::pipe {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kMagic[4] = {'Z', 'P', 'D', '1'};
constexpr size_t kFinalPayloadBytes = 16;
// How long a blocking call waits before looking at `cancel` again.
constexpr milliseconds kCancelPoll{100};
constexpr milliseconds kProgressInterval{100};
// send_abort is called on the way out of a failed hop; it must not hold that up.
constexpr milliseconds kAbortBudget{250};
// libzmq stores ZMQ_HEARTBEAT_TTL in deciseconds in a 16-bit field.
constexpr int kMaxHeartbeatTtlMs = 6553599;

uint64_t load_le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void store_le64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

std::string seconds_text(milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

std::string errno_text(int err) {
  const char* name = strerrorname_np(err);
  return std::string(std::strerror(err)) + " (" + (name != nullptr ? name : "?") + ")";
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct XxhDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};
using XxhState = std::unique_ptr<XXH3_state_t, XxhDeleter>;

XxhState new_hash_state() {
  XxhState s(XXH3_createState());
  if (s) XXH3_64bits_reset(s.get());
  return s;
}

// Calls the progress callback at most every kProgressInterval.
class ProgressTicker {
 public:
  explicit ProgressTicker(const Progress& progress)
      : progress_(progress), last_(Clock::now()) {}
  void tick(uint64_t bytes) {
    if (!progress_) return;
    auto now = Clock::now();
    if (now - last_ < kProgressInterval) return;
    last_ = now;
    progress_(bytes);
  }

 private:
  const Progress& progress_;
  Clock::time_point last_;
};

// "tcp://host:port", with brackets around an IPv6 address.
std::string tcp_endpoint(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Status check_options(const Options& o) {
  if (o.chunk_bytes == 0 || o.chunk_bytes > kMaxFrameBytes - kHeaderBytes) {
    return Status(Code::kInvalidArgument,
                  "pipe chunk size " + std::to_string(o.chunk_bytes) +
                      " is outside 1.." + std::to_string(kMaxFrameBytes - kHeaderBytes));
  }
  if (o.send_hwm < 0 || o.recv_hwm < 0 || o.stall_timeout.count() <= 0 ||
      o.heartbeat_interval.count() < 0 || o.linger.count() < 0) {
    return Status(Code::kInvalidArgument,
                  "pipe options need non-negative queue limits and a positive stall timeout");
  }
  return Status::Ok();
}

// Short enough that cancel is noticed promptly, never longer than the stall timeout.
int wait_slice_ms(const Options& o) {
  return static_cast<int>(std::clamp<int64_t>(o.stall_timeout.count(), 1, kCancelPoll.count()));
}

// While a PULL socket's queue is full, libzmq stops reading its connection, so it
// neither answers nor sees heartbeats: a `zfs recv` that blocks for a few seconds would
// get the connection dropped (and frames lost, a gap) if the heartbeat timeout were the
// usual few intervals. So heartbeats only give up on a peer after the stall timeout,
// which fails the hop anyway; until then they keep idle connections and NAT state alive.
void set_common_options(zmq::socket_t& s, const Options& o, bool ipv6) {
  if (o.heartbeat_interval.count() > 0) {
    int64_t ivl64 = std::min<int64_t>(o.heartbeat_interval.count(), kMaxHeartbeatTtlMs);
    int64_t timeout64 = std::max(3 * ivl64, o.stall_timeout.count() + ivl64);
    int ivl = static_cast<int>(ivl64);
    int timeout = static_cast<int>(std::min<int64_t>(timeout64, kMaxHeartbeatTtlMs));
    s.set(zmq::sockopt::heartbeat_ivl, ivl);
    s.set(zmq::sockopt::heartbeat_timeout, timeout);
    s.set(zmq::sockopt::heartbeat_ttl, timeout);
  }
  if (ipv6) s.set(zmq::sockopt::ipv6, 1);
}

Status zmq_failure(Code code, const std::string& what, const zmq::error_t& e) {
  // ETERM: the process is shutting down its context, which is how agents stop.
  if (e.num() == ETERM) return Status(Code::kCancelled, what + ": shutting down");
  return Status(code, what + ": " + e.what());
}

// A 64 KiB pipe buffer (the default) turns every chunk into several reads or writes,
// each a wake-up of `zfs send` or `zfs recv`; grow it to the chunk size when `fd` is a
// pipe. Failure (not a pipe, over the unprivileged limit) only costs speed.
void grow_pipe(int fd, size_t chunk_bytes) {
  constexpr size_t kMaxPipeBytes = 1024 * 1024;  // the default pipe-max-size
  int want = static_cast<int>(std::min(chunk_bytes, kMaxPipeBytes));
  int have = ::fcntl(fd, F_GETPIPE_SZ);
  if (have >= 0 && have < want) (void)::fcntl(fd, F_SETPIPE_SZ, want);
}

// Writes all of `data` to `fd`. A non-blocking fd is waited on with poll so that
// `cancel` still works.
Status write_all(int fd, const char* data, size_t size, const std::atomic<bool>& cancel) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n >= 0) {
      data += n;
      size -= static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      return Status(Code::kIoError, "writing the stream to fd " + std::to_string(fd) +
                                        " failed: " + errno_text(errno));
    }
    if (cancel.load(std::memory_order_relaxed)) {
      return Status(Code::kCancelled, "receive cancelled");
    }
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(kCancelPoll.count()));
  }
  return Status::Ok();
}

struct Chunk {
  size_t bytes = 0;
  bool eof = false;
};

// Fills `buf` from `fd` until it is full or EOF, so frames stay large. Returns early
// with what it has once `flush_at` passes, so a slow producer still moves data and a
// silent one yields an empty chunk (a keepalive) instead of a stall at the receiver.
Result<Chunk> fill_chunk(int fd, char* buf, size_t size, Clock::time_point flush_at,
                         const std::atomic<bool>& cancel) {
  Chunk c;
  while (c.bytes < size) {
    if (cancel.load(std::memory_order_relaxed)) {
      return Status(Code::kCancelled, "send cancelled");
    }
    // poll first: a blocking read on a quiet pipe would never look at `cancel`.
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(kCancelPoll.count()));
    if (r < 0 && errno != EINTR) {
      return Status(Code::kIoError, "waiting for the stream on fd " + std::to_string(fd) +
                                        " failed: " + errno_text(errno));
    }
    if (r <= 0) {
      if (Clock::now() >= flush_at) return c;
      continue;
    }
    ssize_t n = ::read(fd, buf + c.bytes, size - c.bytes);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Status(Code::kIoError, "reading the stream from fd " + std::to_string(fd) +
                                        " failed: " + errno_text(errno));
    }
    if (n == 0) {
      c.eof = true;
      return c;
    }
    c.bytes += static_cast<size_t>(n);
    if (c.bytes < size && Clock::now() >= flush_at) return c;
  }
  return c;
}

// The frame for a chunk of `n` bytes read into `full`: `full` itself when the chunk
// filled it, else an exact-size copy in `exact` (a zmq message cannot shrink; this copy
// only happens for the last chunk and for flushes of a slow producer).
Result<zmq::message_t*> frame_for_chunk(zmq::message_t& full, size_t n,
                                        zmq::message_t& exact) {
  if (kHeaderBytes + n == full.size()) return &full;
  try {
    exact.rebuild(kHeaderBytes + n);
  } catch (const zmq::error_t& e) {
    return zmq_failure(Code::kIoError, "cannot allocate a frame", e);
  }
  std::memcpy(static_cast<char*>(exact.data()) + kHeaderBytes,
              static_cast<const char*>(full.data()) + kHeaderBytes, n);
  return &exact;
}

// One receive_to call: the state of the stream being checked and written out.
class ReceiveSession {
 public:
  ReceiveSession(zmq::socket_t& socket, const std::string& endpoint, const std::string& token,
                 const Options& options, int fd, const std::atomic<bool>& cancel,
                 const Progress& progress)
      : socket_(socket), endpoint_(endpoint), token_(token), options_(options), fd_(fd),
        cancel_(cancel), ticker_(progress), start_(Clock::now()), last_valid_(start_),
        hash_(new_hash_state()) {}

  Result<Stats> run();

 private:
  // Handles one message; true once the final frame checked out.
  Result<bool> handle(const zmq::message_t& msg);
  Status on_data(const FrameView& f);
  Status on_final(const FrameView& f);
  Status check_stall() const;
  void refuse(const Result<FrameView>& frame);

  zmq::socket_t& socket_;
  const std::string& endpoint_;
  const std::string& token_;
  const Options& options_;
  int fd_;
  const std::atomic<bool>& cancel_;
  ProgressTicker ticker_;
  Clock::time_point start_;
  Clock::time_point last_valid_;
  XxhState hash_;
  Stats stats_;
  bool logged_malformed_ = false;
  bool logged_wrong_token_ = false;
};

Result<Stats> ReceiveSession::run() {
  if (!hash_) return Status(Code::kInternal, "cannot allocate a hash state");
  grow_pipe(fd_, options_.chunk_bytes);
  zmq::message_t msg;
  for (;;) {
    if (cancel_.load(std::memory_order_relaxed)) {
      return Status(Code::kCancelled, "receive cancelled");
    }
    zmq::recv_result_t got;
    try {
      got = socket_.recv(msg, zmq::recv_flags::none);  // waits at most RCVTIMEO
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return zmq_failure(Code::kIoError, "receiving the stream failed", e);
    }
    if (!got) {
      ZPS_RETURN_IF_ERROR(check_stall());
      continue;
    }
    Result<bool> done = handle(msg);
    if (!done.ok()) return done.status();
    if (*done) break;
  }
  stats_.hash = XXH3_64bits_digest(hash_.get());
  stats_.seconds = seconds_since(start_);
  if (stats_.refused_frames > 0) {
    spdlog::warn("data pipe {}: the stream arrived intact; {} frame(s) with a bad token or "
                 "header were refused along the way",
                 endpoint_, stats_.refused_frames);
  }
  return stats_;
}

// Logs the first malformed frame and the first well-formed one with a wrong token of a
// session (the rest are counted, so a flood cannot flood the log), with the reason: an
// operator should see that someone else talks to a data port.
void ReceiveSession::refuse(const Result<FrameView>& frame) {
  ++stats_.refused_frames;
  bool& logged = frame.ok() ? logged_wrong_token_ : logged_malformed_;
  if (logged) return;
  logged = true;
  spdlog::warn("data pipe {}: refused a frame ({}): not from this hop's sender; further "
               "such refusals in this receive are only counted",
               endpoint_, frame.ok() ? "wrong token" : frame.status().message());
}

Result<bool> ReceiveSession::handle(const zmq::message_t& msg) {
  Result<FrameView> frame = parse_frame(msg.data(), msg.size());
  if (!frame.ok() || frame->token != token_) {
    // A stranger (or a stale sender) must not be able to disturb the real stream, nor
    // keep it alive by flooding us.
    refuse(frame);
    ZPS_RETURN_IF_ERROR(check_stall());
    return false;
  }
  const FrameView& f = *frame;
  if (f.kind == FrameKind::kAbort) {
    // The reason beats any gap before it: the sender knows why it stopped.
    return Status(Code::kProtocol, "sender aborted: " + std::string(f.payload));
  }
  if (f.seq != stats_.frames) {
    return Status(Code::kProtocol, "gap in the stream: expected frame " +
                                       std::to_string(stats_.frames) + ", got " +
                                       std::to_string(f.seq));
  }
  if (f.kind == FrameKind::kFinal) {
    ZPS_RETURN_IF_ERROR(on_final(f));
    return true;
  }
  ZPS_RETURN_IF_ERROR(on_data(f));
  return false;
}

Status ReceiveSession::on_data(const FrameView& f) {
  ZPS_RETURN_IF_ERROR(write_all(fd_, f.payload.data(), f.payload.size(), cancel_));
  XXH3_64bits_update(hash_.get(), f.payload.data(), f.payload.size());
  stats_.bytes += f.payload.size();
  ++stats_.frames;
  // Measured after the write: a slow `zfs recv` is not a stalled sender.
  last_valid_ = Clock::now();
  ticker_.tick(stats_.bytes);
  return Status::Ok();
}

Status ReceiveSession::on_final(const FrameView& f) {
  if (f.total_bytes != stats_.bytes) {
    return Status(Code::kProtocol, "byte count mismatch: the sender sent " +
                                       std::to_string(f.total_bytes) + " bytes, " +
                                       std::to_string(stats_.bytes) + " arrived");
  }
  uint64_t hash = XXH3_64bits_digest(hash_.get());
  if (f.hash != hash) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "stream hash mismatch: sender %016llx, received %016llx",
                  static_cast<unsigned long long>(f.hash), static_cast<unsigned long long>(hash));
    return Status(Code::kProtocol, buf);
  }
  return Status::Ok();
}

Status ReceiveSession::check_stall() const {
  if (Clock::now() - last_valid_ < options_.stall_timeout) return Status::Ok();
  std::string msg = "no data for " + seconds_text(options_.stall_timeout) + " (stalled)";
  if (stats_.refused_frames > 0) {
    msg += "; refused " + std::to_string(stats_.refused_frames) +
           " frames with a bad token or header";
  }
  return Status(Code::kTimeout, msg);
}

}  // namespace

// ---- Tokens -------------------------------------------------------------------------

std::string make_token() {
  unsigned char raw[kTokenBytes];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (errno != EINTR) {
      break;
    }
  }
  if (got < sizeof raw) {  // no getrandom (old kernel, seccomp): the library's source
    std::random_device rd;
    for (auto& b : raw) b = static_cast<unsigned char>(rd());
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * kTokenBytes);
  for (unsigned char b : raw) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 0xf]);
  }
  return hex;
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

Result<std::string> token_from_hex(std::string_view hex) {
  Status bad(Code::kInvalidArgument, "a pipe token is 32 hex characters");
  if (hex.size() != 2 * kTokenBytes) return bad;
  std::string raw(kTokenBytes, '\0');
  for (size_t i = 0; i < kTokenBytes; ++i) {
    int hi = hex_value(hex[2 * i]);
    int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return bad;
    raw[i] = static_cast<char>(hi << 4 | lo);
  }
  return raw;
}

// ---- Frames -------------------------------------------------------------------------

Result<FrameView> parse_frame(const void* data, size_t size) {
  if (data == nullptr || size < kHeaderBytes) {
    return Status(Code::kProtocol, "frame of " + std::to_string(size) +
                                       " bytes is shorter than its header");
  }
  const char* p = static_cast<const char*>(data);
  if (std::memcmp(p, kMagic, sizeof kMagic) != 0) {
    return Status(Code::kProtocol, "frame does not start with ZPD1");
  }
  if (p[5] != 0 || p[6] != 0 || p[7] != 0) {
    return Status(Code::kProtocol, "frame header has non-zero reserved bytes");
  }
  FrameView f;
  f.token = std::string_view(p + 8, kTokenBytes);
  f.seq = load_le64(p + 24);
  f.payload = std::string_view(p + kHeaderBytes, size - kHeaderBytes);
  switch (p[4]) {
    case static_cast<char>(FrameKind::kData):
      f.kind = FrameKind::kData;
      return f;
    case static_cast<char>(FrameKind::kFinal):
      if (f.payload.size() != kFinalPayloadBytes) {
        return Status(Code::kProtocol, "final frame payload is " +
                                           std::to_string(f.payload.size()) +
                                           " bytes, not 16");
      }
      f.kind = FrameKind::kFinal;
      f.total_bytes = load_le64(f.payload.data());
      f.hash = load_le64(f.payload.data() + 8);
      return f;
    case static_cast<char>(FrameKind::kAbort):
      if (f.payload.size() > kMaxAbortReasonBytes) {
        return Status(Code::kProtocol, "abort reason is longer than 1 KiB");
      }
      f.kind = FrameKind::kAbort;
      return f;
    default:
      return Status(Code::kProtocol, "unknown frame kind");
  }
}

void write_header(char* out, FrameKind kind, std::string_view token, uint64_t seq) {
  std::memcpy(out, kMagic, sizeof kMagic);
  out[4] = static_cast<char>(kind);
  out[5] = out[6] = out[7] = 0;
  std::memset(out + 8, 0, kTokenBytes);
  std::memcpy(out + 8, token.data(), std::min(token.size(), kTokenBytes));
  store_le64(out + 24, seq);
}

// ---- PipeListener -------------------------------------------------------------------

PipeListener::PipeListener(zmq::socket_t socket, std::string endpoint, uint16_t port,
                           std::string token, Options options)
    : socket_(std::move(socket)), endpoint_(std::move(endpoint)), port_(port),
      token_(std::move(token)), options_(std::move(options)) {}

PipeListener::~PipeListener() = default;

Result<std::unique_ptr<PipeListener>> PipeListener::bind(
    zmq::context_t& ctx, const std::string& bind_host, const std::string& advertise_host,
    uint16_t port_lo, uint16_t port_hi, const std::string& token_hex, const Options& options) {
  Result<std::string> token = token_from_hex(token_hex);
  if (!token.ok()) return token.status();
  ZPS_RETURN_IF_ERROR(check_options(options));
  if (port_lo == 0 || port_lo > port_hi || bind_host.empty()) {
    return Status(Code::kInvalidArgument, "bad data port range " + std::to_string(port_lo) +
                                              "-" + std::to_string(port_hi) + " on '" +
                                              bind_host + "'");
  }
  try {
    zmq::socket_t socket(ctx, zmq::socket_type::pull);
    set_common_options(socket, options, bind_host.find(':') != std::string::npos);
    socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxFrameBytes));
    socket.set(zmq::sockopt::rcvhwm, options.recv_hwm);
    socket.set(zmq::sockopt::rcvtimeo, wait_slice_ms(options));
    socket.set(zmq::sockopt::linger, 0);
    if (options.configure_socket) ZPS_RETURN_IF_ERROR(options.configure_socket(socket));
    for (uint32_t port = port_lo; port <= port_hi; ++port) {
      try {
        socket.bind(tcp_endpoint(bind_host, static_cast<uint16_t>(port)));
      } catch (const zmq::error_t& e) {
        if (e.num() == EADDRINUSE) continue;
        return zmq_failure(Code::kIoError, "cannot bind a data port on " + bind_host, e);
      }
      return std::unique_ptr<PipeListener>(new PipeListener(
          std::move(socket), tcp_endpoint(advertise_host, static_cast<uint16_t>(port)),
          static_cast<uint16_t>(port), std::move(token).value(), options));
    }
  } catch (const zmq::error_t& e) {
    return zmq_failure(Code::kIoError, "cannot open a data socket", e);
  }
  return Status(Code::kUnavailable, "no free data port in " + std::to_string(port_lo) + "-" +
                                        std::to_string(port_hi) + " on " + bind_host);
}

Result<Stats> PipeListener::receive_to(int fd, const std::atomic<bool>& cancel,
                                       const Progress& progress) {
  try {
    return ReceiveSession(socket_, endpoint_, token_, options_, fd, cancel, progress).run();
  } catch (const zmq::error_t& e) {
    return zmq_failure(Code::kIoError, "receiving the stream failed", e);
  }
}

// ---- PipeSender ---------------------------------------------------------------------

struct PipeSender::HashState {
  XxhState state = new_hash_state();
};

PipeSender::PipeSender(zmq::socket_t socket, std::string endpoint, std::string token,
                       Options options)
    : socket_(std::move(socket)), endpoint_(std::move(endpoint)), token_(std::move(token)),
      options_(std::move(options)), hash_(std::make_unique<HashState>()) {}

PipeSender::~PipeSender() = default;

Result<std::unique_ptr<PipeSender>> PipeSender::connect(zmq::context_t& ctx,
                                                        const std::string& endpoint,
                                                        const std::string& token_hex,
                                                        const Options& options) {
  Result<std::string> token = token_from_hex(token_hex);
  if (!token.ok()) return token.status();
  ZPS_RETURN_IF_ERROR(check_options(options));
  std::unique_ptr<PipeSender> sender;
  try {
    zmq::socket_t socket(ctx, zmq::socket_type::push);
    set_common_options(socket, options, endpoint.find('[') != std::string::npos);
    // Without IMMEDIATE, frames queue for a peer that is not there yet and a stalled
    // connect looks like a receiver that reads nothing.
    socket.set(zmq::sockopt::immediate, 1);
    socket.set(zmq::sockopt::sndhwm, options.send_hwm);
    socket.set(zmq::sockopt::sndtimeo, wait_slice_ms(options));
    socket.set(zmq::sockopt::linger, static_cast<int>(options.linger.count()));
    if (options.configure_socket) ZPS_RETURN_IF_ERROR(options.configure_socket(socket));
    try {
      socket.connect(endpoint);
    } catch (const zmq::error_t& e) {
      return zmq_failure(Code::kInvalidArgument, "cannot connect to data endpoint '" +
                                                     endpoint + "'", e);
    }
    sender.reset(new PipeSender(std::move(socket), endpoint, std::move(token).value(), options));
  } catch (const zmq::error_t& e) {
    return zmq_failure(Code::kIoError, "cannot open a data socket", e);
  }
  if (!sender->hash_->state) return Status(Code::kInternal, "cannot allocate a hash state");
  return sender;
}

Status PipeSender::send_frame(zmq::message_t& msg, milliseconds budget,
                              const std::atomic<bool>* cancel) {
  auto start = Clock::now();
  for (;;) {
    try {
      if (socket_.send(msg, zmq::send_flags::none)) return Status::Ok();  // waits SNDTIMEO
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) return zmq_failure(Code::kIoError, "sending the stream failed", e);
    }
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) {
      return Status(Code::kCancelled, "send cancelled");
    }
    if (Clock::now() - start >= budget) break;
  }
  if (seq_ == 0) {
    // With ZMQ_IMMEDIATE nothing is queued before the connection is up.
    return Status(Code::kTimeout, "could not reach the receiver at " + endpoint_ + " for " +
                                      seconds_text(budget));
  }
  return Status(Code::kTimeout,
                "receiver stopped reading: no room to send for " + seconds_text(budget));
}

Result<Stats> PipeSender::stream_from(int fd, const std::atomic<bool>& cancel,
                                      const Progress& progress) {
  const size_t chunk = options_.chunk_bytes;
  Stats stats;
  ProgressTicker ticker(progress);
  auto start = Clock::now();
  grow_pipe(fd, chunk);
  zmq::message_t full;  // reused until sent, so a keepalive does not reallocate it
  for (;;) {
    try {
      if (full.size() != kHeaderBytes + chunk) full.rebuild(kHeaderBytes + chunk);
    } catch (const zmq::error_t& e) {
      return zmq_failure(Code::kIoError, "cannot allocate a frame", e);
    }
    char* buf = static_cast<char*>(full.data());
    Result<Chunk> got = fill_chunk(fd, buf + kHeaderBytes, chunk,
                                   Clock::now() + options_.heartbeat_interval, cancel);
    if (!got.ok()) return got.status();
    const Chunk c = *got;
    if (c.eof && c.bytes == 0) break;

    zmq::message_t exact;
    Result<zmq::message_t*> out = frame_for_chunk(full, c.bytes, exact);
    if (!out.ok()) return out.status();
    write_header(static_cast<char*>((*out)->data()), FrameKind::kData, token_, seq_);
    XXH3_64bits_update(hash_->state.get(), buf + kHeaderBytes, c.bytes);
    ZPS_RETURN_IF_ERROR(send_frame(**out, options_.stall_timeout, &cancel));
    ++seq_;
    bytes_ += c.bytes;
    ++stats.frames;
    stats.bytes += c.bytes;
    ticker.tick(bytes_);
    if (c.eof) break;
  }
  stats.hash = XXH3_64bits_digest(hash_->state.get());
  stats.seconds = seconds_since(start);
  return stats;
}

Status PipeSender::finish(const std::atomic<bool>* cancel) {
  try {
    zmq::message_t msg(kHeaderBytes + kFinalPayloadBytes);
    char* p = static_cast<char*>(msg.data());
    write_header(p, FrameKind::kFinal, token_, seq_);
    store_le64(p + kHeaderBytes, bytes_);
    store_le64(p + kHeaderBytes + 8, XXH3_64bits_digest(hash_->state.get()));
    ZPS_RETURN_IF_ERROR(send_frame(msg, options_.stall_timeout, cancel));
  } catch (const zmq::error_t& e) {
    return zmq_failure(Code::kIoError, "sending the final frame failed", e);
  }
  ++seq_;
  return Status::Ok();
}

void PipeSender::send_abort(std::string_view reason) {
  if (reason.size() > kMaxAbortReasonBytes) {
    size_t n = kMaxAbortReasonBytes;
    // Do not cut a UTF-8 sequence in half: back up over continuation bytes.
    while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
    reason = reason.substr(0, n);
  }
  try {
    zmq::message_t msg(kHeaderBytes + reason.size());
    char* p = static_cast<char*>(msg.data());
    write_header(p, FrameKind::kAbort, token_, seq_);
    std::memcpy(p + kHeaderBytes, reason.data(), reason.size());
    if (send_frame(msg, kAbortBudget, nullptr).ok()) ++seq_;
  } catch (const zmq::error_t&) {
    // Best effort: the receiver's stall timeout covers a lost abort.
  }
}

}  // namespace zps::pipe
