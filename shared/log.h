// Logging for the three programs: spdlog to stderr, either in lines an operator reads
// ("[2026-11-27T10:00:00.000Z]  INFO: zps-broker/4242 on host1: agent dst1 registered
// ...", the seed's shape) or one JSON object per line for machines.
#pragma once

#include <string>
#include <string_view>

#include "shared/status.h"

namespace zps {

// Installs the default logger. `format` is "text" or "json"; `level` a spdlog level
// name. Returns an error for unknown values.
Status init_logging(std::string_view program, std::string_view format, std::string_view level);

}  // namespace zps
