// zps-broker's settings, from the command line and an optional TOML config file
// (command-line flags win).
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace zps::broker {

struct Options {
  std::string config_file;
  std::string listen = "tcp://0.0.0.0:6830";
  std::string state_dir = "/var/lib/zpsend";
  std::string metrics;  // HOST:PORT, empty = off
  int heartbeat_ms = 1000;
  // How long the locks of a job whose receive state is unknown (its sender was lost)
  // are kept when the receiver never confirms that no receive is active.
  int lock_lease_s = 300;
  // Security (shared/program_keys.h): the broker's key pair and who may connect.
  std::string key;              // --key PREFIX
  std::string authorized_keys;  // --authorized-keys FILE
  bool insecure = false;        // plaintext on an endpoint that is not loopback
  std::string log_format = "text";
  std::string log_level = "info";
};

// Declares the flags of the DESIGN.md command-line contract on `app`.
void add_options(CLI::App& app, Options& options);

}  // namespace zps::broker
