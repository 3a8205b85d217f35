// zpsctl's settings: the global flags and each command's own.
#pragma once

#include <cstdint>
#include <string>

#include "shared/program_keys.h"

namespace zps::ctl {

inline constexpr const char* kDefaultBroker = "tcp://127.0.0.1:6830";

struct GlobalOptions {
  std::string broker = kDefaultBroker;
  bool json = false;
  double timeout_s = 5.0;  // the wait for each broker reply
  SecurityFlags security;  // --key (ZPS_KEY), --broker-key (ZPS_BROKER_KEY), --insecure
};

struct ReplicateOptions {
  std::string source;  // AGENT:DATASET
  std::string target;  // AGENT:DATASET, AGENT, or empty
  bool recursive = false;
  bool force = false;
  bool detach = false;
};

struct JobsOptions {
  bool all = false;
};

struct KeygenOptions {
  std::string out = "zpsend";  // writes zpsend.key and zpsend.pub
};

}  // namespace zps::ctl
