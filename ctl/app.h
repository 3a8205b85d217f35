// zpsctl's command line: builds the CLI11 app with every subcommand and runs the one
// the user chose.
#pragma once

#include <string>
#include <vector>

#include "ctl/context.h"

namespace zps::ctl {

// The program: installs the signal handlers, writes to stdout / stderr. Returns the
// process exit status.
int run_cli(int argc, char** argv);

// The same with explicit streams and stop flag (tests). `args` excludes the program name.
int run_cli(const std::vector<std::string>& args, Io io);

}  // namespace zps::ctl
