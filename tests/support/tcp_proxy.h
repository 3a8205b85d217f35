// A TCP proxy for fault tests: sits between a sending agent and a receiving agent's data
// ports and breaks the stream once, the way a network can.
//
// It listens on listen_host:P for every port P of a range and forwards each connection
// to target_host:P (127.0.0.0/8 is all loopback on Linux, so a receiver that advertises
// 127.0.0.2 and binds 127.0.0.1 has every data pipe go through the proxy). In the
// client-to-server direction it counts each connection's bytes; the first connection to
// pass `after_bytes` gets the fault (cut, drop a chunk, flip a byte, or stall), and
// every byte after that, on any connection, passes through untouched, so a retry of the
// hop succeeds. It can also throttle the client-to-server direction, which makes a
// small transfer last long enough to interfere with.
//
// One thread accepts; each connection has its own thread that polls both sockets.
// Everything stops (threads joined, sockets closed) in the destructor.
//
// Thread-safety: the accessors may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "shared/status.h"

namespace zps::test {

enum class ProxyFault {
  kNone,
  kCut,    // close both sides after after_bytes
  kDrop,   // leave out drop_bytes bytes after after_bytes, then go on
  kFlip,   // invert the byte at offset after_bytes
  kStall,  // stop forwarding the client's bytes after after_bytes (until a side closes)
};

const char* fault_name(ProxyFault f);

struct ProxyOptions {
  std::string listen_host = "127.0.0.2";
  std::string target_host = "127.0.0.1";
  uint16_t port_lo = 0;
  uint16_t port_hi = 0;
  ProxyFault fault = ProxyFault::kNone;
  uint64_t after_bytes = 0;  // client-to-server bytes of one connection before the fault
  uint64_t drop_bytes = 4096;
  uint64_t rate_bytes_per_s = 0;  // client-to-server throttle; 0: none
};

class TcpProxy {
 public:
  // Binds every port of the range and starts accepting.
  static Result<std::unique_ptr<TcpProxy>> start(const ProxyOptions& options);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  bool fault_fired() const { return fired_.load(); }
  // What the fault did and where ("flipped byte 3245728 of a connection to port 12040"),
  // empty before it fired.
  std::string fault_description() const;
  uint64_t connections() const { return connections_.load(); }
  uint64_t bytes_up() const { return bytes_up_.load(); }  // client to server, all connections

 private:
  explicit TcpProxy(ProxyOptions options);
  void accept_loop();
  void serve(int client, uint16_t port);
  // Forwards `n` client bytes in buf (already counted up to `offset` on this
  // connection), applying the fault when this chunk crosses its point. Returns false
  // when the connection must end (cut, or a write failed); sets `stalled`.
  bool forward_up(int server, char* buf, size_t n, uint64_t& offset, uint64_t& dropping,
                  bool& stalled, uint16_t port);
  bool claim_fault(const std::string& description);
  void throttle(size_t n);

  ProxyOptions options_;
  std::vector<std::pair<int, uint16_t>> listeners_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> armed_;
  std::atomic<bool> fired_{false};
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> bytes_up_{0};
  mutable std::mutex mu_;
  std::string description_;
  std::vector<std::thread> workers_;  // guarded by mu_
  std::thread acceptor_;
};

}  // namespace zps::test
