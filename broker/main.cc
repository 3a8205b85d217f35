// zps-broker: the fleet's registry of agents, its job table and its lock table.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "broker/broker.h"
#include "broker/options.h"
#include "shared/log.h"
#include "shared/signals.h"
#include "shared/version.h"

int main(int argc, char** argv) {
  CLI::App app{"zps-broker: routes zpsend control messages, places jobs, holds locks"};
  app.set_version_flag("--version", std::string("zps-broker ") + zps::kVersion);
  zps::broker::Options options;
  zps::broker::add_options(app, options);
  CLI11_PARSE(app, argc, argv);

  if (auto s = zps::init_logging("zps-broker", options.log_format, options.log_level); !s.ok()) {
    std::fprintf(stderr, "zps-broker: %s\n", s.message().c_str());
    return 2;
  }
  const auto& stop = zps::install_stop_signals();
  zmq::context_t ctx;
  zps::broker::Broker broker(options, ctx);
  if (auto s = broker.start(); !s.ok()) {
    spdlog::critical("cannot start: {}", s.message());
    return 1;
  }
  broker.run(stop);
  return 0;
}
