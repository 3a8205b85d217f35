// zps-agent: runs on every storage node; sends (runs jobs) and receives (recv sessions).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "agent/options.h"
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
  return 0;
}
