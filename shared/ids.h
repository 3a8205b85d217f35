// Agent ids and the AGENT:DATASET form operators type.
//
// An agent id is 1-64 characters of [A-Za-z0-9_.-], not starting with '-' or '.': it
// appears in dataset paths (<root>/<agent>/<dataset>), logs and key files.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "shared/status.h"

namespace zps {

Status validate_agent_id(std::string_view id);

struct AgentDataset {
  std::string agent;
  std::string dataset;  // may be empty when only an agent was given
};

// "node1:zones/test" -> {node1, zones/test}; "node1" -> {node1, ""} when
// `dataset_optional`. Both parts validated.
Result<AgentDataset> parse_agent_dataset(std::string_view text, bool dataset_optional);

}  // namespace zps
