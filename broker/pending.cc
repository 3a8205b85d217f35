#include "broker/pending.h"

namespace zps::broker {

std::optional<PendingCall> PendingCalls::take(uint64_t id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return std::nullopt;
  PendingCall c = std::move(it->second);
  calls_.erase(it);
  return c;
}

std::vector<std::pair<uint64_t, PendingCall>> PendingCalls::take_expired(
    std::chrono::steady_clock::time_point now) {
  std::vector<std::pair<uint64_t, PendingCall>> out;
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (it->second.deadline <= now) {
      out.emplace_back(it->first, std::move(it->second));
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<std::pair<uint64_t, PendingCall>> PendingCalls::take_for_agent(const std::string& agent) {
  std::vector<std::pair<uint64_t, PendingCall>> out;
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (it->second.to_agent == agent) {
      out.emplace_back(it->first, std::move(it->second));
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace zps::broker
