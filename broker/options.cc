#include "broker/options.h"

#include <CLI/CLI.hpp>

namespace zps::broker {

void add_options(CLI::App& app, Options& o) {
  app.set_config("--config", "", "TOML config file (flags given on the command line win)");
  app.add_option("--listen", o.listen, "ROUTER endpoint agents and zpsctl connect to")
      ->capture_default_str();
  app.add_option("--state-dir", o.state_dir, "directory for the SQLite state")
      ->capture_default_str();
  app.add_option("--metrics", o.metrics, "serve Prometheus metrics on HOST:PORT");
  app.add_option("--heartbeat-ms", o.heartbeat_ms, "heartbeat interval in milliseconds")
      ->capture_default_str()
      ->check(CLI::Range(50, 600000));
  app.add_option("--lock-lease-s", o.lock_lease_s,
                 "seconds a lost job's locks are kept when its receiver never confirms the "
                 "receive stopped")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--key", o.key,
                 "this broker's key pair: PREFIX.key from 'zpsctl keygen --out PREFIX' "
                 "(turns on CURVE; needs --authorized-keys)");
  app.add_option("--authorized-keys", o.authorized_keys,
                 "file of the agent and operator keys allowed to connect");
  app.add_flag("--insecure", o.insecure,
               "run without keys even when --listen is not a loopback address (plaintext)");
  app.add_option("--log-format", o.log_format, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
}

}  // namespace zps::broker
