#include "tests/support/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace zps::test {
namespace {

constexpr int kPollMs = 100;  // how often loops look at stop_
constexpr size_t kBufBytes = 64 * 1024;
constexpr size_t kThrottledReadBytes = 16 * 1024;  // smaller reads keep a throttle smooth

Status errno_status(const std::string& what) {
  return Status(Code::kIoError, what + ": " + std::strerror(errno));
}

Result<sockaddr_in> address(const std::string& host, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    return Status(Code::kInvalidArgument, "not an IPv4 address: " + host);
  }
  return a;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

const char* fault_name(ProxyFault f) {
  switch (f) {
    case ProxyFault::kNone: return "none";
    case ProxyFault::kCut: return "cut";
    case ProxyFault::kDrop: return "drop";
    case ProxyFault::kFlip: return "flip";
    case ProxyFault::kStall: return "stall";
  }
  return "?";
}

TcpProxy::TcpProxy(ProxyOptions options)
    : options_(std::move(options)), armed_(options_.fault != ProxyFault::kNone) {}

Result<std::unique_ptr<TcpProxy>> TcpProxy::start(const ProxyOptions& options) {
  if (options.port_lo == 0 || options.port_lo > options.port_hi) {
    return Status(Code::kInvalidArgument, "bad proxy port range");
  }
  std::unique_ptr<TcpProxy> proxy(new TcpProxy(options));
  for (uint32_t port = options.port_lo; port <= options.port_hi; ++port) {
    auto addr = address(options.listen_host, static_cast<uint16_t>(port));
    if (!addr.ok()) return addr.status();
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno_status("socket");
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0 ||
        ::listen(fd, 16) != 0) {
      Status s = errno_status("proxy cannot listen on " + options.listen_host + ":" +
                              std::to_string(port));
      ::close(fd);
      return s;  // the destructor closes the listeners bound so far
    }
    proxy->listeners_.emplace_back(fd, static_cast<uint16_t>(port));
  }
  proxy->acceptor_ = std::thread([p = proxy.get()] { p->accept_loop(); });
  return proxy;
}

TcpProxy::~TcpProxy() {
  stop_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
  for (auto& [fd, port] : listeners_) ::close(fd);
}

std::string TcpProxy::fault_description() const {
  std::lock_guard<std::mutex> lock(mu_);
  return description_;
}

void TcpProxy::accept_loop() {
  std::vector<pollfd> fds;
  for (auto& [fd, port] : listeners_) fds.push_back({fd, POLLIN, 0});
  while (!stop_.load()) {
    int r = ::poll(fds.data(), fds.size(), kPollMs);
    if (r <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      int client = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      ++connections_;
      const uint16_t port = listeners_[i].second;
      std::lock_guard<std::mutex> lock(mu_);
      workers_.emplace_back([this, client, port] { serve(client, port); });
    }
  }
}

bool TcpProxy::claim_fault(const std::string& description) {
  bool expected = true;
  if (!armed_.compare_exchange_strong(expected, false)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  description_ = description;
  fired_.store(true);
  return true;
}

void TcpProxy::throttle(size_t n) {
  if (options_.rate_bytes_per_s == 0) return;
  std::this_thread::sleep_for(std::chrono::microseconds(n * 1000000 / options_.rate_bytes_per_s));
}

bool TcpProxy::forward_up(int server, char* buf, size_t n, uint64_t& offset, uint64_t& dropping,
                          bool& stalled, uint16_t port) {
  const uint64_t start = offset;
  offset += n;
  bytes_up_ += n;
  const uint64_t at = options_.after_bytes;
  const std::string where = " of a connection to port " + std::to_string(port);
  size_t keep_from = 0;  // bytes of buf before this are sent as they are
  if (dropping > 0) {    // a drop that began in an earlier read
    const size_t d = static_cast<size_t>(std::min<uint64_t>(dropping, n));
    dropping -= d;
    keep_from = d;
  } else if (armed_.load() && start <= at && at < offset) {
    const size_t cut = static_cast<size_t>(at - start);
    switch (options_.fault) {
      case ProxyFault::kCut:
        if (claim_fault("cut the connection after byte " + std::to_string(at) + where)) {
          write_all(server, buf, cut);
          return false;
        }
        break;
      case ProxyFault::kDrop:
        if (claim_fault("dropped bytes " + std::to_string(at) + ".." +
                        std::to_string(at + options_.drop_bytes - 1) + where)) {
          if (!write_all(server, buf, cut)) return false;
          dropping = options_.drop_bytes;
          const size_t d = static_cast<size_t>(std::min<uint64_t>(dropping, n - cut));
          dropping -= d;
          buf += cut + d;
          n -= cut + d;
        }
        break;
      case ProxyFault::kFlip:
        if (claim_fault("flipped byte " + std::to_string(at) + where)) buf[cut] ^= 0xFF;
        break;
      case ProxyFault::kStall:
        if (claim_fault("stalled after byte " + std::to_string(at) + where)) {
          stalled = true;
          return write_all(server, buf, cut);
        }
        break;
      case ProxyFault::kNone:
        break;
    }
  }
  if (!write_all(server, buf + keep_from, n - keep_from)) return false;
  throttle(n);
  return true;
}

void TcpProxy::serve(int client, uint16_t port) {
  int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto addr = address(options_.target_host, port);
  if (server < 0 || !addr.ok() ||
      ::connect(server, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    // Nothing listens there (the receiver closed the port): like a refused connection.
    if (server >= 0) ::close(server);
    ::close(client);
    return;
  }
  int one = 1;
  ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<char> buf(kBufBytes);
  const size_t up_read = options_.rate_bytes_per_s ? kThrottledReadBytes : kBufBytes;
  uint64_t offset = 0, dropping = 0;
  bool stalled = false;
  while (!stop_.load()) {
    pollfd fds[2] = {{client, static_cast<short>(stalled ? 0 : POLLIN), 0},
                     {server, POLLIN, 0}};
    int r = ::poll(fds, 2, kPollMs);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    // A stalled connection still notices that either side went away.
    if ((fds[0].revents & (POLLHUP | POLLERR)) && stalled) break;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(client, buf.data(), up_read, 0);
      if (n <= 0) break;
      if (!forward_up(server, buf.data(), static_cast<size_t>(n), offset, dropping, stalled,
                      port)) {
        break;
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(server, buf.data(), buf.size(), 0);
      if (n <= 0 || !write_all(client, buf.data(), static_cast<size_t>(n))) break;
    }
  }
  ::close(server);
  ::close(client);
}

}  // namespace zps::test
