// zps-agent: runs on every storage node; sends (runs jobs) and receives (recv sessions).
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "agent/agent.h"
#include "agent/options.h"
#include "shared/log.h"
#include "shared/signals.h"
#include "shared/version.h"

int main(int argc, char** argv) {
  CLI::App app{"zps-agent: sends and receives ZFS snapshots for zpsend"};
  app.set_version_flag("--version", std::string("zps-agent ") + zps::kVersion);
  zps::agent::Options options;
  zps::agent::add_options(app, options);
  CLI11_PARSE(app, argc, argv);
  if (auto err = zps::agent::finish_options(options); !err.empty()) {
    std::fprintf(stderr, "zps-agent: %s\n", err.c_str());
    return 2;
  }
  if (auto s = zps::init_logging("zps-agent", options.log_format, options.log_level); !s.ok()) {
    std::fprintf(stderr, "zps-agent: %s\n", s.message().c_str());
    return 2;
  }
  const auto& stop = zps::install_stop_signals();
  zmq::context_t ctx;
  int rc = 0;
  {
    zps::agent::Agent agent(options, ctx);
    if (auto s = agent.start(); !s.ok()) {
      spdlog::critical("cannot start: {}", s.message());
      rc = 1;
    } else {
      agent.run(stop);
    }
  }
  return rc;
}
