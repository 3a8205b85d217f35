#include "agent/options.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>

#include "shared/ids.h"

namespace zps::agent {

void add_options(CLI::App& app, Options& o) {
  app.set_config("--config", "", "TOML config file (flags given on the command line win)");
  app.add_option("--broker", o.broker, "broker endpoint")
      ->envname("ZPS_BROKER")
      ->capture_default_str();
  app.add_option("--id", o.id, "this agent's name in the fleet (default: host name)");
  app.add_option("--data-address", o.data_address,
                 "address senders use to reach this agent's data ports (default: 127.0.0.1)");
  app.add_option("--data-bind", o.data_bind,
                 "address data sockets bind to (default: --data-address when it is an IP "
                 "address, else all interfaces)");
  app.add_option("--data-ports", o.data_ports, "port range LO-HI for data pipes")
      ->capture_default_str();
  app.add_option("--recv-root", o.recv_roots,
                 "dataset under which this agent accepts receives (repeatable; none: "
                 "sender only)");
  app.add_option("--max-recvs", o.max_recvs, "concurrent receives at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--zfs", o.zfs, "path of the zfs program")->capture_default_str();
  app.add_option("--zpool", o.zpool, "path of the zpool program")->capture_default_str();
  app.add_option("--metrics", o.metrics, "serve Prometheus metrics on HOST:PORT");
  app.add_option("--zfs-log", o.zfs_log, "append every zfs command line this agent runs to FILE");
  app.add_option("--parallel", o.parallel, "datasets of a recursive job sent at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--hop-retries", o.hop_attempts, "tries of one hop before its job fails")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--retry-backoff-ms", o.retry_backoff_ms,
                 "wait before the first retry of a hop (doubles after each)")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  app.add_option("--stall-timeout-ms", o.stall_timeout_ms,
                 "abort a data pipe that moves nothing for this long")
      ->capture_default_str()
      ->check(CLI::Range(100, 3600000));
  app.add_option("--key", o.security.key,
                 "this agent's key pair: PREFIX.key from 'zpsctl keygen --out PREFIX' "
                 "(turns on CURVE; needs --broker-key)");
  app.add_option("--broker-key", o.security.broker_key,
                 "the broker's public key: its .pub file or the 40-character key")
      ->envname("ZPS_BROKER_KEY");
  app.add_flag("--insecure", o.security.insecure,
               "run without keys even when the broker or data address is not loopback "
               "(plaintext)");
  app.add_option("--log-format", o.log_format, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
}

std::string finish_options(Options& o) {
  auto dash = o.data_ports.find('-');
  if (dash == std::string::npos) return "--data-ports must be LO-HI, e.g. 6831-6931";
  unsigned lo = 0, hi = 0;
  const char* s = o.data_ports.data();
  auto r1 = std::from_chars(s, s + dash, lo);
  auto r2 = std::from_chars(s + dash + 1, s + o.data_ports.size(), hi);
  if (r1.ec != std::errc() || r1.ptr != s + dash || r2.ec != std::errc() ||
      r2.ptr != s + o.data_ports.size() || lo == 0 || hi > 65535 || lo > hi) {
    return "--data-ports must be LO-HI with 1 <= LO <= HI <= 65535, got " + o.data_ports;
  }
  o.data_port_lo = static_cast<uint16_t>(lo);
  o.data_port_hi = static_cast<uint16_t>(hi);
  if (o.id.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) == 0) o.id = host;
  }
  if (Status s = validate_agent_id(o.id); !s.ok()) return "--id: " + s.message();
  if (o.data_address.empty()) o.data_address = "127.0.0.1";
  unsigned char buf[sizeof(struct in6_addr)];
  const bool numeric = inet_pton(AF_INET, o.data_address.c_str(), buf) == 1 ||
                       inet_pton(AF_INET6, o.data_address.c_str(), buf) == 1;
  if (o.data_bind.empty()) o.data_bind = numeric ? o.data_address : "*";
  return {};
}

}  // namespace zps::agent
