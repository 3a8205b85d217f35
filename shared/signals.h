// Process-wide signal set-up shared by the three programs: SIGPIPE ignored (a peer or
// a child going away is an error value, not a death), SIGTERM and SIGINT turned into a
// stop flag that event loops poll.
#pragma once

#include <atomic>

namespace zps {

// Installs the handlers; returns the flag SIGTERM/SIGINT set.
const std::atomic<bool>& install_stop_signals();

}  // namespace zps
