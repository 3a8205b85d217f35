// A replication job as the broker records it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shared/protocol.h"

namespace zps::broker {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };

std::string_view state_name(JobState s);
JobState state_from_name(std::string_view name);  // unknown -> kFailed
inline bool is_final(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

struct Job {
  uint64_t id = 0;
  JobState state = JobState::kQueued;
  std::string source_agent;
  std::string source_dataset;
  std::string target_agent;
  std::string target_dataset;
  bool recursive = false;
  bool force = false;
  uint64_t fence = 0;
  std::string error;
  std::string error_code;
  std::vector<std::string> warnings;
  uint64_t created_ms = 0;  // unix ms
  uint64_t ended_ms = 0;
  uint64_t bytes = 0;
  uint32_t hops_done = 0;
  std::vector<proto::HopInfo> hops;

  // The wire / JSON form; hops only when asked.
  proto::JobInfo info(bool with_hops) const;
};

}  // namespace zps::broker
