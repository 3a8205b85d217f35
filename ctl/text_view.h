// What zpsctl prints for people (without --json): aligned tables for lists, header
// lines for one job, and the one-line outcome of a job.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "shared/protocol.h"

namespace zps::ctl {

std::string agents_text(const std::vector<proto::AgentInfo>& agents);
// `what` is the AGENT:DATASET asked about (named when there are no snapshots).
std::string snapshots_text(const std::string& what, const std::vector<proto::Snapshot>& snapshots);
// `all`: the list includes finished jobs (only changes the empty-list message).
std::string jobs_text(const std::vector<proto::JobInfo>& jobs, bool all);
// Header lines, then the hop table.
std::string job_text(const proto::JobInfo& job);
std::string locks_text(const std::vector<proto::LockInfo>& locks);

// The outcome line of a finished job, e.g. "job 7 succeeded: a:x -> b:y, 7 hops, 1.1 MiB
// in 0.9 s", or "job 7 failed: <error>". A success without hops says the target was
// already up to date.
std::string job_outcome(const proto::JobInfo& job);
// True for the states a job never leaves.
bool is_final_state(const std::string& state);

}  // namespace zps::ctl
