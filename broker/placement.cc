#include "broker/placement.h"

#include <algorithm>

#include "shared/names.h"

namespace zps::broker {
namespace {

uint64_t free_bytes_of_root(const AgentEntry& e, const std::string& root) {
  const std::string pool(root.substr(0, root.find('/')));
  for (const auto& p : e.pools) {
    if (p.name == pool) return p.free;
  }
  return 0;
}

// The root with the most free space.
std::string best_root(const AgentEntry& e) {
  std::string best;
  uint64_t best_free = 0;
  for (const auto& root : e.hello.recv_roots) {
    uint64_t f = free_bytes_of_root(e, root);
    if (best.empty() || f > best_free) {
      best = root;
      best_free = f;
    }
  }
  return best;
}

double load_of(const AgentEntry& e) {
  return e.hello.max_recvs == 0 ? 1.0
                                : static_cast<double>(e.load.active_recvs) / e.hello.max_recvs;
}

Result<std::string> placed_path(const std::string& root, const std::string& source_agent,
                                const std::string& source_dataset) {
  std::string path = root + "/" + source_agent + "/" + source_dataset;
  if (Status s = validate_dataset_name(path); !s.ok()) {
    return Status(Code::kInvalidArgument,
                  "the placed target " + quote_name(path) + " is not a valid dataset name (" +
                      s.message() + "); give an explicit TARGET as AGENT:DATASET");
  }
  return path;
}

Result<const AgentEntry*> pick_agent(const AgentRegistry& registry, const std::string& source_agent) {
  const AgentEntry* best = nullptr;
  auto better = [&](const AgentEntry& a, const AgentEntry& b) {
    bool a_other = a.hello.agent != source_agent, b_other = b.hello.agent != source_agent;
    if (a_other != b_other) return a_other;
    if (load_of(a) != load_of(b)) return load_of(a) < load_of(b);
    return free_bytes_of_root(a, best_root(a)) > free_bytes_of_root(b, best_root(b));
  };
  for (const auto& [id, e] : registry.agents()) {
    if (!e.alive || e.hello.recv_roots.empty()) continue;
    if (best == nullptr || better(e, *best)) best = &e;
  }
  if (best == nullptr) {
    return Status(Code::kUnavailable,
                  "no live agent accepts receives (none registered with --recv-root); start "
                  "one, or name the TARGET explicitly");
  }
  return best;
}

}  // namespace

Status check_under_root(const AgentEntry& agent, const std::string& dataset) {
  for (const auto& root : agent.hello.recv_roots) {
    if (is_same_or_below(dataset, root)) return Status::Ok();
  }
  std::string roots;
  for (const auto& r : agent.hello.recv_roots) roots += (roots.empty() ? "" : ", ") + r;
  return Status(Code::kOutsideRoot,
                "target " + agent.hello.agent + ":" + quote_name(dataset) +
                    " is outside every receive root of " + agent.hello.agent + " (" +
                    (roots.empty() ? std::string("it has none: it only sends") : roots) +
                    "); choose a target below one of them");
}

Result<TargetChoice> choose_target(const AgentRegistry& registry, const std::string& source_agent,
                                   const std::string& source_dataset,
                                   const std::string& wanted_agent,
                                   const std::string& wanted_dataset,
                                   const std::optional<Placement>& remembered) {
  if (!wanted_agent.empty() && !wanted_dataset.empty()) {
    return TargetChoice{wanted_agent, wanted_dataset, false};
  }
  if (remembered && (wanted_agent.empty() || wanted_agent == remembered->target_agent)) {
    const AgentEntry* e = registry.find_alive(remembered->target_agent);
    if (e != nullptr && check_under_root(*e, remembered->target_dataset).ok()) {
      return TargetChoice{remembered->target_agent, remembered->target_dataset, false};
    }
  }
  const AgentEntry* agent = nullptr;
  if (!wanted_agent.empty()) {
    agent = registry.find_alive(wanted_agent);
    if (agent == nullptr) {
      return Status(Code::kUnavailable, "target agent " + wanted_agent +
                                            " is not connected; check that its zps-agent runs "
                                            "(zpsctl agents)");
    }
    if (agent->hello.recv_roots.empty()) {
      return Status(Code::kOutsideRoot, "agent " + wanted_agent +
                                            " has no receive root (--recv-root), so it cannot "
                                            "receive; give TARGET as AGENT:DATASET on an agent "
                                            "with a root");
    }
  } else {
    auto picked = pick_agent(registry, source_agent);
    if (!picked.ok()) return picked.status();
    agent = *picked;
  }
  auto path = placed_path(best_root(*agent), source_agent, source_dataset);
  if (!path.ok()) return path.status();
  return TargetChoice{agent->hello.agent, *path, true};
}

}  // namespace zps::broker
