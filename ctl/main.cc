// zpsctl: the operator's command-line client.
#include "ctl/app.h"

int main(int argc, char** argv) { return zps::ctl::run_cli(argc, argv); }
