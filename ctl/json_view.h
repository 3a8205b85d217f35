// The --json documents zpsctl prints, one builder per command (DESIGN.md, command-line
// contract). Field names are the protocol's; 64-bit guids are decimal strings because
// JSON numbers lose precision above 2^53 in most readers.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "shared/protocol.h"

namespace zps::ctl {

nlohmann::ordered_json agents_json(const std::vector<proto::AgentInfo>& agents);
nlohmann::ordered_json snapshots_json(const std::vector<proto::Snapshot>& snapshots);
nlohmann::ordered_json hop_json(const proto::HopInfo& hop);
// The job object; `hops` only when `with_hops` (job, replicate, watch).
nlohmann::ordered_json job_json(const proto::JobInfo& job, bool with_hops);
nlohmann::ordered_json jobs_json(const std::vector<proto::JobInfo>& jobs);
nlohmann::ordered_json locks_json(const std::vector<proto::LockInfo>& locks);
// replicate --detach: {"job": N}.
nlohmann::ordered_json detached_json(uint64_t job);

}  // namespace zps::ctl
