#include "broker/job.h"

namespace zps::broker {

std::string_view state_name(JobState s) {
  switch (s) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "failed";
}

JobState state_from_name(std::string_view name) {
  for (auto s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                 JobState::kCancelled}) {
    if (state_name(s) == name) return s;
  }
  return JobState::kFailed;
}

proto::JobInfo Job::info(bool with_hops) const {
  proto::JobInfo j;
  j.id = id;
  j.state = std::string(state_name(state));
  j.source = source_agent + ":" + source_dataset;
  j.target = target_agent + ":" + target_dataset;
  j.recursive = recursive;
  j.force = force;
  j.error = error;
  j.error_code = error_code;
  j.warnings = warnings;
  j.created_ms = created_ms;
  j.ended_ms = ended_ms;
  j.bytes = bytes;
  j.hops_done = hops_done;
  if (with_hops) j.hops = hops;
  return j;
}

}  // namespace zps::broker
