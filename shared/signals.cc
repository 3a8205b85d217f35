#include "shared/signals.h"

#include <pthread.h>

#include <csignal>
#include <string>
#include <thread>

namespace zps {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

const std::atomic<bool>& install_stop_signals() {
  std::signal(SIGPIPE, SIG_IGN);
  // SIGTERM and SIGINT are blocked here, before any other thread exists, so every
  // thread started later (ours and libzmq's) inherits the block, and one thread takes
  // them with sigwait. Delivered to an arbitrary thread instead, a signal interrupts
  // whatever blocking zmq call that thread is in (EINTR), which is an exception in the
  // middle of a job rather than a clean stop. Children get an empty mask (process.cc).
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      g_signal.store(sig);
      g_stop.store(true);
    }
  }).detach();
  return g_stop;
}

std::string stop_signal_name() {
  switch (g_signal.load()) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "a stop request";
  }
}

}  // namespace zps
