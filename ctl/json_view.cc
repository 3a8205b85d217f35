#include "ctl/json_view.h"

#include <string>

namespace zps::ctl {

using json = nlohmann::ordered_json;

nlohmann::ordered_json agents_json(const std::vector<proto::AgentInfo>& agents) {
  json out = json::array();
  for (const auto& a : agents) {
    json pools = json::array();
    for (const auto& p : a.pools) pools.push_back({{"name", p.name}, {"free", p.free}});
    out.push_back({{"id", a.id},
                   {"host", a.host},
                   {"alive", a.alive},
                   {"recv_roots", a.recv_roots},
                   {"active_recvs", a.active_recvs},
                   {"max_recvs", a.max_recvs},
                   {"peak_recvs", a.peak_recvs},
                   {"version", a.version},
                   {"running_jobs", a.running_jobs},
                   {"data_address", a.data_address},
                   {"last_seen_ms", a.last_seen_ms},
                   {"pools", std::move(pools)}});
  }
  return out;
}

nlohmann::ordered_json snapshots_json(const std::vector<proto::Snapshot>& snapshots) {
  json out = json::array();
  for (const auto& s : snapshots) {
    out.push_back({{"name", s.name}, {"guid", std::to_string(s.guid)}, {"createtxg", s.createtxg}});
  }
  return out;
}

nlohmann::ordered_json hop_json(const proto::HopInfo& h) {
  return {{"n", h.n},         {"dataset", h.dataset}, {"from", h.from},       {"to", h.to},
          {"bytes", h.bytes}, {"state", h.state},     {"seconds", h.seconds}, {"error", h.error}};
}

nlohmann::ordered_json job_json(const proto::JobInfo& j, bool with_hops) {
  json out = {{"id", j.id},
              {"state", j.state},
              {"source", j.source},
              {"target", j.target},
              {"recursive", j.recursive},
              {"force", j.force},
              {"error", j.error},
              {"error_code", j.error_code},
              {"warnings", j.warnings},
              {"created_ms", j.created_ms},
              {"ended_ms", j.ended_ms},
              {"bytes", j.bytes},
              {"hops_done", j.hops_done}};
  if (with_hops) {
    json hops = json::array();
    for (const auto& h : j.hops) hops.push_back(hop_json(h));
    out["hops"] = std::move(hops);
  }
  return out;
}

nlohmann::ordered_json jobs_json(const std::vector<proto::JobInfo>& jobs) {
  json out = json::array();
  for (const auto& j : jobs) out.push_back(job_json(j, false));
  return out;
}

nlohmann::ordered_json locks_json(const std::vector<proto::LockInfo>& locks) {
  json out = json::array();
  for (const auto& l : locks) {
    out.push_back({{"agent", l.agent},
                   {"dataset", l.dataset},
                   {"recursive", l.recursive},
                   {"job", l.job},
                   {"fence", l.fence}});
  }
  return out;
}

nlohmann::ordered_json detached_json(uint64_t job) { return {{"job", job}}; }

}  // namespace zps::ctl
