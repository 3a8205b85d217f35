// The version every program reports (--version, hello, logs) and the protocol name.
#pragma once

namespace zps {

inline constexpr const char* kVersion = ZPS_VERSION;

}  // namespace zps
