// Where a replication lands when the operator did not say exactly: the receiver agent
// (when omitted) and the dataset `<receive root>/<source agent>/<source dataset>`.
//
// A remembered placement wins while its agent is alive and still has that root; else
// the least loaded alive receiver (active receives / max receives), preferring agents
// other than the source, then the one with the most free space in the root's pool.
//
// Thread-safety: pure functions over the registry.
#pragma once

#include <optional>
#include <string>

#include "broker/registry.h"
#include "broker/store.h"
#include "shared/status.h"

namespace zps::broker {

struct TargetChoice {
  std::string agent;
  std::string dataset;
  bool chosen_by_broker = false;  // remember it for the next run
};

// `wanted_agent` / `wanted_dataset` are what the operator gave (either may be empty).
Result<TargetChoice> choose_target(const AgentRegistry& registry, const std::string& source_agent,
                                   const std::string& source_dataset,
                                   const std::string& wanted_agent,
                                   const std::string& wanted_dataset,
                                   const std::optional<Placement>& remembered);

// kOutsideRoot unless `dataset` is one of the agent's receive roots or lies below one.
Status check_under_root(const AgentEntry& agent, const std::string& dataset);

}  // namespace zps::broker
