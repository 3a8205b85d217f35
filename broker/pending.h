// Requests the broker sent to agents and is waiting on: forwarded ones (whose replies go
// back to the peer that asked) and the broker's own (job_start, job_cancel).
//
// Each has a deadline; when it passes, or when the agent it went to is declared dead,
// the entry is taken out and the asker gets an error instead of waiting forever.
//
// Thread-safety: not thread-safe; owned by the broker's loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace zps::broker {

struct PendingCall {
  enum class Kind { kForward, kJobStart, kJobCancel };
  Kind kind = Kind::kForward;
  std::string origin_peer;  // who asked (kForward)
  uint64_t origin_id = 0;   // their request id (kForward, and kJobStart: the replicate)
  std::string to_agent;
  uint64_t job = 0;
  std::chrono::steady_clock::time_point deadline;
  std::string what;  // "snapshots of dst1:pool/x", for error messages
  // A forwarded prepare under CURVE: the receiver's key from the authorized keys, put
  // into the reply in place of whatever the receiver said.
  std::string server_key;
};

class PendingCalls {
 public:
  void add(uint64_t id, PendingCall call) { calls_[id] = std::move(call); }
  std::optional<PendingCall> take(uint64_t id);
  // Entries whose deadline passed.
  std::vector<std::pair<uint64_t, PendingCall>> take_expired(std::chrono::steady_clock::time_point now);
  // Entries waiting on `agent`.
  std::vector<std::pair<uint64_t, PendingCall>> take_for_agent(const std::string& agent);
  size_t size() const { return calls_.size(); }

 private:
  std::map<uint64_t, PendingCall> calls_;
};

}  // namespace zps::broker
