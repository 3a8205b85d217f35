// zpsctl's command line: builds the CLI11 app with every subcommand and runs the one
// the user chose.
#pragma once

namespace zps::ctl {

// Returns the process exit status.
int run_cli(int argc, char** argv);

}  // namespace zps::ctl
