// The broker's durable state: SQLite (WAL) in --state-dir. Agents, jobs with their hops,
// locks, placements, and counters (next job id, next fence) survive a restart.
//
// Every write is its own transaction (synchronous=NORMAL under WAL: a crash loses at
// most the last few commits, never corrupts). Errors are returned as values naming the
// database file.
//
// Thread-safety: not thread-safe; owned by the broker's loop thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/job.h"
#include "broker/lock_table.h"
#include "shared/status.h"

struct sqlite3;

namespace zps::broker {

struct AgentRecord {
  std::string id;
  std::string host;
  std::string version;
  std::string data_address;
  std::vector<std::string> recv_roots;
  uint32_t max_recvs = 0;
  uint64_t last_seen_ms = 0;  // unix ms
};

struct Placement {
  std::string source_agent;
  std::string source_dataset;
  std::string target_agent;
  std::string target_dataset;
};

class Store {
 public:
  // Creates the directory and the schema when missing. `path` is the state directory.
  static Result<std::unique_ptr<Store>> open(const std::string& state_dir);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }

  Status save_agent(const AgentRecord& agent);
  Result<std::vector<AgentRecord>> load_agents();

  // Inserts or replaces the job row and all of its hops.
  Status save_job(const Job& job);
  // Inserts or replaces one hop of a job (cheaper than save_job during a run).
  Status save_hop(uint64_t job, const proto::HopInfo& hop);
  // Jobs that are not final, plus the newest `recent` final ones, with their hops.
  Result<std::vector<Job>> load_jobs(size_t recent);
  Result<std::optional<Job>> load_job(uint64_t id);

  Status save_lock(const Lock& lock);
  Status delete_locks(uint64_t job);
  Result<std::vector<Lock>> load_locks();

  Status save_placement(const Placement& p);
  Result<std::optional<Placement>> find_placement(const std::string& source_agent,
                                                  const std::string& source_dataset);

  // Persistent counters: get returns the stored value or `initial`; set stores it.
  Result<uint64_t> get_counter(const std::string& name, uint64_t initial);
  Status set_counter(const std::string& name, uint64_t value);

 private:
  Store(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

}  // namespace zps::broker
