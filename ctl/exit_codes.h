// zpsctl's exit statuses (DESIGN.md, command-line contract).
#pragma once

namespace zps::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitJobFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitRefused = 4;

}  // namespace zps::ctl
