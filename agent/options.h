// zps-agent's settings, from the command line, ZPS_BROKER and an optional TOML config
// file (command-line flags win).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shared/program_keys.h"

namespace CLI {
class App;
}

namespace zps::agent {

struct Options {
  std::string broker = "tcp://127.0.0.1:6830";
  std::string id;            // default: the host name
  std::string data_address;  // address senders connect to; default 127.0.0.1
  // Where data sockets bind: the data address when it is an IP address, else all
  // interfaces ("*"), so a host name can be advertised.
  std::string data_bind;
  std::string data_ports = "6831-6931";
  uint16_t data_port_lo = 6831;
  uint16_t data_port_hi = 6931;
  std::vector<std::string> recv_roots;
  int max_recvs = 8;
  std::string zfs = "zfs";
  std::string zpool = "zpool";
  std::string metrics;
  std::string zfs_log;       // append every zfs argv the agent runs (audit, tests)
  int parallel = 4;          // datasets of a -r job sent at once
  int hop_attempts = 5;      // tries of a hop before its job fails
  int retry_backoff_ms = 1000;
  int stall_timeout_ms = 30000;
  // Security (shared/program_keys.h): --key, --broker-key, --insecure.
  SecurityFlags security;
  std::string log_format = "text";
  std::string log_level = "info";
};

void add_options(CLI::App& app, Options& options);

// Fills derived fields (port range, default id) after parsing; returns an error text
// or empty.
std::string finish_options(Options& options);

}  // namespace zps::agent
