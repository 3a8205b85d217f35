// Shows a job's progress from its job_event notices while zpsctl waits for it.
//
// On a terminal (stderr is a tty) it keeps one status line on stderr, rewritten with
// '\r'. Otherwise it prints a plain line on stdout per finished or failed hop
// ("job 7: zones/test hop 3/7 -i @now2 @8550: 1.2 MiB in 0.08 s (15.0 MiB/s)") and per
// warning, which logs and pipes read well; with --json stdout is kept for the document
// and only warnings go to stderr.
//
// Thread-safety: one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "ctl/context.h"
#include "shared/protocol.h"

namespace zps::ctl {

class ProgressPrinter {
 public:
  ProgressPrinter(Io& io, bool json, uint64_t job);
  ~ProgressPrinter() { finish(); }
  ProgressPrinter(const ProgressPrinter&) = delete;
  ProgressPrinter& operator=(const ProgressPrinter&) = delete;

  void on_event(const proto::JobEvent& event);
  // Prints a warning unless this one was already shown.
  void warning(const std::string& message);
  // Clears the status line, so what follows starts on a clean line.
  void finish();

  // The plain line for a finished hop (also what the status line shows then).
  static std::string hop_done_line(uint64_t job, const proto::JobEvent& e, double seconds);

 private:
  using Clock = std::chrono::steady_clock;

  void status_line(const std::string& text);
  void plain_line(const std::string& text);
  double hop_seconds(const proto::JobEvent& e);

  Io& io_;
  bool json_;
  uint64_t job_;
  std::string prefix_;       // "job 7: "
  bool line_shown_ = false;  // a status line is on the terminal
  std::set<std::string> warned_;
  std::map<uint32_t, Clock::time_point> started_;  // hop -> when we saw it start
};

}  // namespace zps::ctl
