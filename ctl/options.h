// zpsctl's global settings.
#pragma once

#include <string>

namespace zps::ctl {

struct GlobalOptions {
  std::string broker = "tcp://127.0.0.1:6830";
  bool json = false;
  double timeout_s = 5.0;
};

}  // namespace zps::ctl
