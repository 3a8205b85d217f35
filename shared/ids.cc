#include "shared/ids.h"

#include "shared/names.h"

namespace zps {

Status validate_agent_id(std::string_view id) {
  if (id.empty()) return Status(Code::kInvalidArgument, "agent id is empty");
  if (id.size() > 64) {
    return Status(Code::kInvalidArgument,
                  "agent id " + quote_name(id) + " is longer than 64 characters");
  }
  if (id.front() == '-' || id.front() == '.') {
    return Status(Code::kInvalidArgument,
                  "agent id " + quote_name(id) + " must not start with '-' or '.'");
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) {
      return Status(Code::kInvalidArgument,
                    "agent id " + quote_name(id) +
                        " may contain only letters, digits, '_', '.' and '-'");
    }
  }
  return Status::Ok();
}

Result<AgentDataset> parse_agent_dataset(std::string_view text, bool dataset_optional) {
  AgentDataset out;
  auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    if (!dataset_optional) {
      return Status(Code::kInvalidArgument,
                    quote_name(text) + " is not AGENT:DATASET (e.g. node1:zones/test)");
    }
    out.agent = std::string(text);
  } else {
    out.agent = std::string(text.substr(0, colon));
    out.dataset = std::string(text.substr(colon + 1));
  }
  ZPS_RETURN_IF_ERROR(validate_agent_id(out.agent));
  if (!out.dataset.empty() || colon != std::string_view::npos) {
    ZPS_RETURN_IF_ERROR(validate_dataset_name(out.dataset));
  }
  return out;
}

}  // namespace zps
