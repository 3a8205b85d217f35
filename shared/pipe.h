// The data pipe: carries one hop's `zfs send` stream from the sending agent to the
// receiving agent over a direct ZeroMQ PUSH/PULL connection, never through the broker.
//
// One pipe per hop: the receiver binds a fresh PULL endpoint from its data port range
// and makes a fresh random token, so a reconnect can never splice two streams. Every
// frame carries the token and a sequence number; the last frame carries the total byte
// count and an XXH3-64 hash of the stream. The receiver fails the stream (and its
// caller kills `zfs recv`, so no partial snapshot appears) on a gap in the sequence, a
// bad hash or byte count, an abort frame from the sender, or a stall longer than the
// timeout. Frames with a wrong token or a malformed header are dropped and counted, so
// a stranger connecting to the port cannot disturb a real transfer; if no valid stream
// arrives the stall timeout ends the session and the reason says what was refused.
//
// PUSH/PULL can lose messages on reconnect; sequence numbers turn that into a clean
// abort and the sender retries the hop. The PUSH side sets ZMQ_IMMEDIATE, a small
// SNDHWM (a few MiB in flight, like mbuffer) and a bounded linger; both sides use ZMTP
// heartbeats.
//
// A slow producer must not look like a stall: the sender flushes a partial chunk once it
// has waited heartbeat_interval for it to fill, and sends an empty data frame when the
// producer has been silent that long. So the receiver's stall timeout means the sender
// or the network is gone, not that `zfs send` is thinking.
//
// Thread-safety: a PipeListener or PipeSender belongs to the thread that uses it; the
// `cancel` flag may be set from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "shared/status.h"

namespace zps::pipe {

inline constexpr size_t kHeaderBytes = 32;
inline constexpr size_t kTokenBytes = 16;
inline constexpr size_t kDefaultChunkBytes = 256 * 1024;
// Largest frame a PULL socket accepts (ZMQ_MAXMSGSIZE): header plus the largest chunk.
inline constexpr size_t kMaxFrameBytes = kHeaderBytes + 4 * 1024 * 1024;

struct Options {
  size_t chunk_bytes = kDefaultChunkBytes;
  int send_hwm = 16;  // frames queued on the PUSH side (16 x 256 KiB = 4 MiB in flight)
  int recv_hwm = 16;
  std::chrono::milliseconds stall_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(1)};
  std::chrono::milliseconds linger{std::chrono::seconds(5)};
  // Called on the fresh socket before it binds or connects: the security layer sets
  // CURVE keys here (libzmq copies a socket's options into each listener and connection
  // when bind or connect runs, so setting them afterwards has no effect).
  std::function<Status(zmq::socket_t&)> configure_socket;
};

// A random one-time token, as 32 hex characters (how it travels in control messages).
std::string make_token();
// Parses a token from hex; kInvalidArgument when it is not 32 hex characters.
Result<std::string> token_from_hex(std::string_view hex);

struct Stats {
  uint64_t bytes = 0;         // payload bytes moved
  uint64_t frames = 0;
  uint64_t hash = 0;          // XXH3-64 of the payload
  uint64_t refused_frames = 0;  // receiver: frames dropped for a bad token or header
  double seconds = 0;
};

// Progress callback: payload bytes so far. Called at most every ~100 ms.
using Progress = std::function<void(uint64_t bytes)>;

// Receiver side of one hop.
class PipeListener {
 public:
  // Binds a PULL socket on the first free port of [port_lo, port_hi] at `bind_host`
  // (an IP address or "*") and advertises `advertise_host` in endpoint().
  static Result<std::unique_ptr<PipeListener>> bind(zmq::context_t& ctx,
                                                    const std::string& bind_host,
                                                    const std::string& advertise_host,
                                                    uint16_t port_lo, uint16_t port_hi,
                                                    const std::string& token_hex,
                                                    const Options& options = {});
  ~PipeListener();

  // "tcp://advertise_host:port"
  const std::string& endpoint() const { return endpoint_; }
  uint16_t port() const { return port_; }

  // Reads the stream and writes its payload to `fd` until the final frame checks out.
  // When `fd` is a pipe its buffer is grown to the chunk size (fewer wake-ups).
  // Errors: kProtocol (gap, bad hash or count, abort frame from the sender; the message
  // says which), kTimeout (stall), kIoError (writing to fd failed, e.g. zfs recv
  // exited), kCancelled (cancel was set).
  Result<Stats> receive_to(int fd, const std::atomic<bool>& cancel,
                           const Progress& progress = nullptr);

  // The socket, for tests and monitoring. CURVE must be set through
  // Options::configure_socket, before bind.
  zmq::socket_t& socket() { return socket_; }

 private:
  PipeListener(zmq::socket_t socket, std::string endpoint, uint16_t port, std::string token,
               Options options);
  zmq::socket_t socket_;
  std::string endpoint_;
  uint16_t port_;
  std::string token_;  // raw 16 bytes
  Options options_;
};

// Sender side of one hop: connects to `endpoint` and streams everything read from `fd`
// until EOF, then the final frame. When `fd` ends because the producer failed, call
// send_abort() instead of relying on EOF: the caller knows (zfs send's exit status).
class PipeSender {
 public:
  static Result<std::unique_ptr<PipeSender>> connect(zmq::context_t& ctx,
                                                     const std::string& endpoint,
                                                     const std::string& token_hex,
                                                     const Options& options = {});
  ~PipeSender();

  // Streams `fd` until EOF (growing its buffer to the chunk size when it is a pipe).
  // Does not send the final frame (see finish()). Errors:
  // kTimeout (the receiver stopped reading for stall_timeout), kIoError (reading fd),
  // kCancelled.
  Result<Stats> stream_from(int fd, const std::atomic<bool>& cancel,
                            const Progress& progress = nullptr);
  // Queues the final frame (byte count and hash), waiting up to stall_timeout for room
  // (kCancelled as soon as `cancel` is set).
  // Up to send_hwm frames may still be queued behind it: keep this object alive until
  // the receiver reports the hop's outcome over the control plane. Destroying it gives
  // the queue only `linger` to leave, and a receiver that is slow right then loses the
  // tail (it fails the hop with a stall).
  Status finish(const std::atomic<bool>* cancel = nullptr);
  // Tells the receiver to give up at once, with a reason for its logs (best effort:
  // waits at most a fraction of a second for room in the queue).
  void send_abort(std::string_view reason);

  // The socket, for tests and monitoring. CURVE must be set through
  // Options::configure_socket, before connect.
  zmq::socket_t& socket() { return socket_; }

 private:
  PipeSender(zmq::socket_t socket, std::string endpoint, std::string token, Options options);
  // Sends `msg`, retrying while the queue is full until `budget` runs out or `cancel`
  // (may be null) is set.
  Status send_frame(zmq::message_t& msg, std::chrono::milliseconds budget,
                    const std::atomic<bool>* cancel);
  zmq::socket_t socket_;
  std::string endpoint_;
  std::string token_;
  Options options_;
  uint64_t seq_ = 0;
  uint64_t bytes_ = 0;
  struct HashState;
  std::unique_ptr<HashState> hash_;
};

// ---- Frame format (exposed for tests and the fuzzer) --------------------------------
//
//   0  "ZPD1"          magic
//   4  kind            'D' data, 'F' final, 'A' abort
//   5  3 bytes         zero
//   8  16 bytes        token
//  24  u64 LE          sequence number (0, 1, 2, ...; the final frame continues it)
//  32  payload         data (possibly empty: a keepalive); or for 'F' u64 LE total
//                      bytes + u64 LE hash; or for 'A' the reason (UTF-8, at most 1 KiB)

inline constexpr size_t kMaxAbortReasonBytes = 1024;

enum class FrameKind : char { kData = 'D', kFinal = 'F', kAbort = 'A' };

struct FrameView {
  FrameKind kind = FrameKind::kData;
  std::string_view token;  // 16 raw bytes
  uint64_t seq = 0;
  std::string_view payload;
  uint64_t total_bytes = 0;  // kFinal
  uint64_t hash = 0;         // kFinal
};

// Parses a frame; kProtocol on any malformation. Views point into `data`.
Result<FrameView> parse_frame(const void* data, size_t size);
// Writes a header for a frame into `out` (kHeaderBytes).
void write_header(char* out, FrameKind kind, std::string_view token, uint64_t seq);

}  // namespace zps::pipe
