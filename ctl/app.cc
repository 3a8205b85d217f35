#include "ctl/app.h"

#include <CLI/CLI.hpp>

#include "ctl/exit_codes.h"
#include "ctl/options.h"
#include "shared/version.h"

namespace zps::ctl {

int run_cli(int argc, char** argv) {
  CLI::App app{"zpsctl: control zpsend replication"};
  app.set_version_flag("--version", std::string("zpsctl ") + kVersion);
  GlobalOptions g;
  app.add_option("--broker", g.broker, "broker endpoint")->envname("ZPS_BROKER")->capture_default_str();
  app.add_flag("--json", g.json, "print one JSON document on stdout");
  app.add_option("--timeout", g.timeout_s, "seconds to wait for the broker")->capture_default_str();
  app.require_subcommand(1);
  app.add_subcommand("agents", "registered agents, liveness, load, roots");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  return kExitOk;
}

}  // namespace zps::ctl
