#include "broker/registry.h"

namespace zps::broker {

Status AgentRegistry::admit(const proto::Hello& hello, const std::string& peer,
                            Clock::time_point now) const {
  auto it = agents_.find(hello.agent);
  if (it == agents_.end()) return Status::Ok();
  const AgentEntry& e = it->second;
  const bool other_process = e.alive && e.peer != peer && e.hello.instance != 0 &&
                             hello.instance != 0 && e.hello.instance != hello.instance;
  if (!other_process || now - e.last_seen > heartbeat_ * 3 / 2) return Status::Ok();
  return Status(Code::kRefused,
                "agent id " + hello.agent + " is in use by another running zps-agent (registered from " +
                    (e.peer_address.empty() ? e.hello.host : e.peer_address) +
                    "); give every agent its own --id");
}

bool AgentRegistry::on_hello(const proto::Hello& hello, const std::string& peer,
                             const std::string& peer_address, Clock::time_point now) {
  AgentEntry& e = agents_[hello.agent];
  const bool was_alive = e.alive;
  if (!e.peer.empty() && e.peer != peer) by_peer_.erase(e.peer);
  e.hello = hello;
  e.peer = peer;
  e.peer_address = peer_address;
  e.alive = true;
  e.last_seen = now;
  e.load = hello.load;
  e.pools = hello.pools;
  e.gone.clear();
  by_peer_[peer] = hello.agent;
  return !was_alive;
}

std::optional<std::string> AgentRegistry::touch(const std::string& peer, Clock::time_point now) {
  auto it = by_peer_.find(peer);
  if (it == by_peer_.end()) return std::nullopt;
  AgentEntry& e = agents_[it->second];
  if (!e.alive) return std::nullopt;
  e.last_seen = now;
  return it->second;
}

void AgentRegistry::on_heartbeat(const std::string& id, const proto::Heartbeat& hb) {
  auto it = agents_.find(id);
  if (it == agents_.end()) return;
  it->second.load = hb.load;
  if (!hb.pools.empty()) it->second.pools = hb.pools;
}

void AgentRegistry::mark_stopped(const std::string& id, const std::string& why) {
  auto it = agents_.find(id);
  if (it == agents_.end()) return;
  AgentEntry& e = it->second;
  e.alive = false;
  by_peer_.erase(e.peer);
  e.peer.clear();
  e.load = {};
  e.gone = why;
}

std::vector<std::string> AgentRegistry::sweep(Clock::time_point now) {
  std::vector<std::string> dead;
  for (auto& [id, e] : agents_) {
    if (e.alive && now - e.last_seen > dead_after()) {
      e.alive = false;
      by_peer_.erase(e.peer);
      e.peer.clear();
      e.load = {};
      dead.push_back(id);
    }
  }
  return dead;
}

void AgentRegistry::restore(const proto::Hello& hello) {
  auto [it, inserted] = agents_.try_emplace(hello.agent);
  if (inserted) it->second.hello = hello;
}

const AgentEntry* AgentRegistry::find(const std::string& id) const {
  auto it = agents_.find(id);
  return it == agents_.end() ? nullptr : &it->second;
}

const AgentEntry* AgentRegistry::find_alive(const std::string& id) const {
  const AgentEntry* e = find(id);
  return e != nullptr && e->alive ? e : nullptr;
}

std::optional<std::string> AgentRegistry::id_of_peer(const std::string& peer) const {
  auto it = by_peer_.find(peer);
  if (it == by_peer_.end()) return std::nullopt;
  return it->second;
}

proto::AgentInfo AgentRegistry::info(const AgentEntry& e, Clock::time_point now) const {
  proto::AgentInfo a;
  a.id = e.hello.agent;
  a.host = e.hello.host;
  a.version = e.hello.version;
  a.alive = e.alive;
  a.recv_roots = e.hello.recv_roots;
  a.active_recvs = e.load.active_recvs;
  a.max_recvs = e.hello.max_recvs;
  a.peak_recvs = e.load.peak_recvs;
  a.running_jobs = e.load.running_jobs;
  a.data_address = e.hello.data_address;
  a.pools = e.pools;
  if (e.last_seen != Clock::time_point{}) {
    a.last_seen_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now - e.last_seen).count());
  }
  return a;
}

}  // namespace zps::broker
