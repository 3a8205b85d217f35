// zpsctl's exit statuses (DESIGN.md, command-line contract).
#pragma once

#include "shared/status.h"

namespace zps::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitJobFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitRefused = 4;

// The exit status for an error the broker (or a job) reported: refusals, which changed
// nothing, are 4; everything else is 1.
inline int exit_code_for(Code code) { return is_refusal(code) ? kExitRefused : kExitJobFailed; }

}  // namespace zps::ctl
