// Process-wide signal set-up shared by the three programs: SIGPIPE ignored (a peer or
// a child going away is an error value, not a death), SIGTERM and SIGINT turned into a
// stop flag that event loops poll.
#pragma once

#include <atomic>
#include <string>

namespace zps {

// Call first in main(), before any thread starts. Returns the flag SIGTERM/SIGINT set;
// event loops poll it (the signals never interrupt a blocking call).
const std::atomic<bool>& install_stop_signals();

// "SIGTERM" or "SIGINT": the signal that set the flag, for log lines and reasons.
std::string stop_signal_name();

}  // namespace zps
