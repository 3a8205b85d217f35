#include "ctl/text_view.h"

#include "ctl/format.h"
#include "ctl/table.h"

namespace zps::ctl {
namespace {

using Align = Table::Align;

std::string yes_no(bool b) { return b ? "yes" : "no"; }

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Wall time from creation to end, when both are known.
std::string job_duration(const proto::JobInfo& j) {
  if (j.created_ms == 0 || j.ended_ms < j.created_ms) return "";
  return format_seconds(static_cast<double>(j.ended_ms - j.created_ms) / 1000);
}

std::string agent_seen(const proto::AgentInfo& a) {
  // An agent restored from the store that has not connected since has no last contact.
  if (!a.alive && a.last_seen_ms == 0) return "-";
  return format_age_ms(a.last_seen_ms);
}

std::string hops_table(const std::vector<proto::HopInfo>& hops) {
  bool errors = false;
  for (const auto& h : hops) errors = errors || !h.error.empty();
  std::vector<Table::Column> cols = {
      {"HOP", Align::kRight},  {"DATASET"}, {"SEND"}, {"BYTES", Align::kRight},
      {"TIME", Align::kRight}, {"STATE"}};
  if (errors) cols.push_back({"ERROR"});
  Table t(std::move(cols));
  for (const auto& h : hops) {
    t.add_row({std::to_string(h.n), h.dataset, h.to.empty() ? "" : describe_send(h.from, h.to),
               human_bytes(h.bytes), format_seconds(h.seconds), h.state, h.error});
  }
  return t.render();
}

}  // namespace

bool is_final_state(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

std::string agents_text(const std::vector<proto::AgentInfo>& agents) {
  if (agents.empty()) return "no agents registered (start zps-agent with --broker pointing here)\n";
  Table t({{"ID"},
           {"HOST"},
           {"ALIVE"},
           {"ROOTS"},
           {"RECVS", Align::kRight},
           {"JOBS", Align::kRight},
           {"SEEN"}});
  for (const auto& a : agents) {
    t.add_row({a.id, a.host, yes_no(a.alive), a.recv_roots.empty() ? "-" : join(a.recv_roots, ","),
               std::to_string(a.active_recvs) + "/" + std::to_string(a.max_recvs),
               std::to_string(a.running_jobs), agent_seen(a)});
  }
  return t.render();
}

std::string snapshots_text(const std::string& what, const std::vector<proto::Snapshot>& snapshots) {
  if (snapshots.empty()) return what + " has no snapshots\n";
  Table t({{"NAME"}, {"GUID", Align::kRight}, {"CREATETXG", Align::kRight}});
  for (const auto& s : snapshots) {
    t.add_row({s.name, std::to_string(s.guid), std::to_string(s.createtxg)});
  }
  return t.render();
}

std::string jobs_text(const std::vector<proto::JobInfo>& jobs, bool all) {
  if (jobs.empty()) {
    return all ? "no jobs\n" : "no running jobs (zpsctl jobs --all lists finished ones too)\n";
  }
  Table t({{"ID", Align::kRight},
           {"STATE"},
           {"SOURCE"},
           {"TARGET"},
           {"HOPS", Align::kRight},
           {"BYTES", Align::kRight},
           {"ERROR"}});
  for (const auto& j : jobs) {
    t.add_row({std::to_string(j.id), j.state, j.source, j.target, std::to_string(j.hops_done),
               human_bytes(j.bytes), j.error});
  }
  return t.render();
}

std::string job_text(const proto::JobInfo& j) {
  Table head({{"job " + std::to_string(j.id) + ":"}, {j.state}});
  head.add_row({"source", j.source});
  head.add_row({"target", j.target});
  std::vector<std::string> opts;
  if (j.recursive) opts.push_back("recursive");
  if (j.force) opts.push_back("force");
  if (!opts.empty()) head.add_row({"options", join(opts, ", ")});
  head.add_row({"created", format_time_ms(j.created_ms)});
  if (j.ended_ms != 0) {
    head.add_row({"ended", format_time_ms(j.ended_ms) + " (after " + job_duration(j) + ")"});
  }
  head.add_row({"sent", plural(j.hops_done, "hop", "hops") + ", " + human_bytes(j.bytes)});
  if (!j.error.empty()) {
    head.add_row({"error", j.error + (j.error_code.empty() ? "" : " [" + j.error_code + "]")});
  }
  for (const auto& w : j.warnings) head.add_row({"warning", w});
  std::string out = head.render() + "\n";
  if (!j.hops.empty()) return out + hops_table(j.hops);
  if (j.state == "succeeded") return out + "no hops: the target was already up to date\n";
  return out + (is_final_state(j.state) ? "no hops ran\n" : "no hops yet\n");
}

std::string locks_text(const std::vector<proto::LockInfo>& locks) {
  if (locks.empty()) return "no locks held\n";
  Table t(
      {{"AGENT"}, {"DATASET"}, {"RECURSIVE"}, {"JOB", Align::kRight}, {"FENCE", Align::kRight}});
  for (const auto& l : locks) {
    t.add_row(
        {l.agent, l.dataset, yes_no(l.recursive), std::to_string(l.job), std::to_string(l.fence)});
  }
  return t.render();
}

std::string job_outcome(const proto::JobInfo& j) {
  const std::string job = "job " + std::to_string(j.id);
  if (j.state == "succeeded") {
    if (j.hops_done == 0) {
      return job + " succeeded: " + j.target + " is already up to date with " + j.source +
             " (nothing to send)";
    }
    std::string line = job + " succeeded: " + j.source + " -> " + j.target + ", " +
                       plural(j.hops_done, "hop", "hops") + ", " + human_bytes(j.bytes);
    const std::string took = job_duration(j);
    return took.empty() ? line : line + " in " + took;
  }
  if (j.error.empty()) {
    return job + " " + j.state + " (no reason recorded; see zpsctl job " + std::to_string(j.id) +
           ")";
  }
  return job + " " + j.state + ": " + j.error;
}

}  // namespace zps::ctl
