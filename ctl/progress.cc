#include "ctl/progress.h"

#include "ctl/format.h"

namespace zps::ctl {
namespace {

constexpr size_t kMaxStarted = 4096;  // hops whose start time we remember

std::string totals(const proto::JobInfo& state) {
  if (state.hops_done == 0) return "";
  return " | " + std::to_string(state.hops_done) + (state.hops_done == 1 ? " hop" : " hops") +
         " done, " + human_bytes(state.bytes);
}

}  // namespace

ProgressPrinter::ProgressPrinter(Io& io, bool json, uint64_t job)
    : io_(io), json_(json), job_(job), prefix_("job " + std::to_string(job) + ": ") {}

std::string ProgressPrinter::hop_done_line(uint64_t job, const proto::JobEvent& e, double seconds) {
  std::string line = "job " + std::to_string(job) + ": " +
                     describe_hop(e.dataset, e.hop, e.of, e.from, e.to) + ": " +
                     human_bytes(e.bytes) + " in " + format_seconds(seconds);
  const double rate =
      e.rate > 0 ? e.rate : (seconds > 0 ? static_cast<double>(e.bytes) / seconds : 0);
  if (rate > 0) line += " (" + human_rate(rate) + ")";
  return line;
}

double ProgressPrinter::hop_seconds(const proto::JobEvent& e) {
  if (e.rate > 0) return static_cast<double>(e.bytes) / e.rate;
  auto it = started_.find(e.hop);
  if (it == started_.end()) return 0;
  return std::chrono::duration<double>(Clock::now() - it->second).count();
}

void ProgressPrinter::on_event(const proto::JobEvent& e) {
  const std::string hop = describe_hop(e.dataset, e.hop, e.of, e.from, e.to);
  if (e.kind == "hop_started") {
    if (started_.size() < kMaxStarted) started_[e.hop] = Clock::now();
    status_line(prefix_ + hop + ": starting" + totals(e.state));
  } else if (e.kind == "progress") {
    status_line(prefix_ + hop + ": " + human_bytes(e.bytes) +
                (e.rate > 0 ? " (" + human_rate(e.rate) + ")" : "") + totals(e.state));
  } else if (e.kind == "hop_done") {
    const std::string line = hop_done_line(job_, e, hop_seconds(e));
    started_.erase(e.hop);
    if (io_.err_is_tty) {
      status_line(line + totals(e.state));
    } else if (!json_) {
      plain_line(line);
    }
  } else if (e.kind == "hop_failed") {
    started_.erase(e.hop);
    plain_line(prefix_ + hop + " failed: " + e.message);
  } else if (e.kind == "warning") {
    warning(e.message);
  }
}

void ProgressPrinter::warning(const std::string& message) {
  if (!warned_.insert(message).second) return;
  plain_line(prefix_ + "warning: " + message);
}

void ProgressPrinter::status_line(const std::string& text) {
  if (!io_.err_is_tty) return;
  std::string shown = text;
  // A line longer than the terminal wraps, and '\r' then no longer rewrites all of it.
  if (io_.term_width > 1 && shown.size() >= io_.term_width) shown.resize(io_.term_width - 1);
  io_.err << "\r" << shown << "\x1b[K" << std::flush;
  line_shown_ = true;
}

// A line that stays: below the status line on a terminal, on stdout in plain mode, on
// stderr with --json (stdout holds only the document).
void ProgressPrinter::plain_line(const std::string& text) {
  if (io_.err_is_tty) {
    finish();
    io_.err << text << "\n" << std::flush;
  } else if (json_) {
    io_.err << text << "\n" << std::flush;
  } else {
    io_.out << text << "\n" << std::flush;
  }
}

void ProgressPrinter::finish() {
  if (!line_shown_) return;
  io_.err << "\r\x1b[K" << std::flush;
  line_shown_ = false;
}

}  // namespace zps::ctl
