// zps-broker: the fleet's registry of agents, its job table and its lock table.
#include <CLI/CLI.hpp>

#include "broker/options.h"
#include "shared/version.h"

int main(int argc, char** argv) {
  CLI::App app{"zps-broker: routes zpsend control messages, places jobs, holds locks"};
  app.set_version_flag("--version", std::string("zps-broker ") + zps::kVersion);
  zps::broker::Options options;
  zps::broker::add_options(app, options);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
