#include "shared/endpoints.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "shared/names.h"

namespace zps {
namespace {

bool is_loopback_ipv4(const std::string& host) {
  in_addr addr{};
  if (inet_pton(AF_INET, host.c_str(), &addr) != 1) return false;
  return (ntohl(addr.s_addr) >> 24) == 127;
}

bool is_loopback_ipv6(const std::string& host) {
  in6_addr addr{};
  if (inet_pton(AF_INET6, host.c_str(), &addr) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&addr)) return true;
  return IN6_IS_ADDR_V4MAPPED(&addr) && addr.s6_addr[12] == 127;
}

bool is_localhost(std::string_view host) {
  constexpr std::string_view kLocalhost = "localhost";
  return std::equal(host.begin(), host.end(), kLocalhost.begin(), kLocalhost.end(),
                    [](char a, char b) { return (a | 0x20) == b; });
}

bool is_port(std::string_view port) {
  if (port == "*") return true;
  if (port.empty() || port.size() > 5) return false;
  return std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "HOST:PORT" or "[V6]:PORT".
bool is_loopback_host_port(std::string_view hp) {
  std::string_view host;
  std::string_view port;
  if (!hp.empty() && hp.front() == '[') {
    const size_t close = hp.find(']');
    if (close == std::string_view::npos || close + 1 >= hp.size() || hp[close + 1] != ':') {
      return false;
    }
    host = hp.substr(1, close - 1);
    port = hp.substr(close + 2);
    if (!is_port(port)) return false;
    return is_loopback_ipv6(std::string(host));
  }
  const size_t colon = hp.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  host = hp.substr(0, colon);
  port = hp.substr(colon + 1);
  if (!is_port(port)) return false;
  const std::string h(host);
  return is_localhost(host) || is_loopback_ipv4(h) || is_loopback_ipv6(h);
}

}  // namespace

bool is_loopback_endpoint(std::string_view endpoint) {
  if (endpoint.find('\0') != std::string_view::npos) return false;
  constexpr std::string_view kTcp = "tcp://";
  if (endpoint.starts_with("inproc://") || endpoint.starts_with("ipc://")) return true;
  if (!endpoint.starts_with(kTcp)) return false;
  std::string_view rest = endpoint.substr(kTcp.size());
  // libzmq's "tcp://SOURCE;DEST" (connect with a source address).
  const size_t semi = rest.find(';');
  if (semi != std::string_view::npos) {
    return is_loopback_host_port(rest.substr(0, semi)) &&
           is_loopback_host_port(rest.substr(semi + 1));
  }
  return is_loopback_host_port(rest);
}

Status check_plaintext_allowed(const std::vector<std::string>& endpoints, bool insecure,
                               std::string_view program, std::string_view key_options) {
  if (insecure) return Status::Ok();
  for (const std::string& ep : endpoints) {
    if (is_loopback_endpoint(ep)) continue;
    std::string msg = "refusing to start " + std::string(program) + " without encryption: " +
                      quote_name(ep) +
                      " is not a loopback endpoint, and plaintext is allowed only when every "
                      "endpoint is. Create a key pair with 'zpsctl keygen --out PREFIX' "
                      "(it writes PREFIX.key and PREFIX.pub)";
    if (!key_options.empty()) {
      msg += " and start " + std::string(program) + " with " + std::string(key_options);
    }
    msg += ", or pass --insecure to send in plaintext anyway";
    return Status(Code::kRefused, std::move(msg));
  }
  return Status::Ok();
}

}  // namespace zps
