// The broker's view of the fleet: which agents registered, from which ZeroMQ peer, with
// which receive roots and load, and whether they are alive.
//
// An agent is alive while its heartbeats (or any message) arrive; silent for
// `liveness` intervals it is marked dead (Paranoid Pirate). A dead agent stays listed
// (zpsctl agents shows it as not alive); when it comes back it says hello again.
//
// Thread-safety: not thread-safe; owned by the broker's loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shared/protocol.h"

namespace zps::broker {

using Clock = std::chrono::steady_clock;

struct AgentEntry {
  proto::Hello hello;           // as last registered
  std::string peer;             // ROUTER routing id of its connection
  std::string peer_address;     // where it connected from, for logs
  bool alive = false;
  Clock::time_point last_seen{};
  proto::Load load;
  std::vector<proto::PoolSpace> pools;
  std::string gone;             // why it left, when it said so ("it was stopped (SIGTERM)")
};

class AgentRegistry {
 public:
  AgentRegistry(std::chrono::milliseconds heartbeat, int liveness)
      : heartbeat_(heartbeat), liveness_(liveness) {}

  // kRefused when another process still heartbeats under the same id: a hello from a
  // different instance is taken only once the registered one has been silent for more
  // than one and a half heartbeat intervals (a restart waits that long, a duplicate
  // --id is refused for good).
  Status admit(const proto::Hello& hello, const std::string& peer, Clock::time_point now) const;
  // Records a hello; returns true when the agent was not alive before (new or back).
  bool on_hello(const proto::Hello& hello, const std::string& peer,
                const std::string& peer_address, Clock::time_point now);
  // Records that `peer` was heard from; returns its agent id, or nullopt when the peer
  // is not a registered, alive agent (it must say hello again).
  std::optional<std::string> touch(const std::string& peer, Clock::time_point now);
  void on_heartbeat(const std::string& id, const proto::Heartbeat& hb);

  // An agent that said it is stopping: not alive from now on, with its reason.
  void mark_stopped(const std::string& id, const std::string& why);

  // Marks agents silent for too long as dead; returns their ids.
  std::vector<std::string> sweep(Clock::time_point now);

  // Adds an agent known from the store (not alive until it says hello).
  void restore(const proto::Hello& hello);

  const AgentEntry* find(const std::string& id) const;
  const AgentEntry* find_alive(const std::string& id) const;
  std::optional<std::string> id_of_peer(const std::string& peer) const;
  const std::map<std::string, AgentEntry>& agents() const { return agents_; }

  proto::AgentInfo info(const AgentEntry& e, Clock::time_point now) const;
  std::chrono::milliseconds dead_after() const { return heartbeat_ * liveness_; }

 private:
  std::chrono::milliseconds heartbeat_;
  int liveness_;
  std::map<std::string, AgentEntry> agents_;
  std::map<std::string, std::string> by_peer_;
};

}  // namespace zps::broker
