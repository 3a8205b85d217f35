#include "broker/store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <concepts>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>
#include <vector>

namespace zps::broker {
namespace {

constexpr uint64_t kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 5000;

// The layout of schema version 1. Lists are JSON arrays of strings (warnings are free
// text and may hold newlines). `final` mirrors is_final(state) so load_jobs can pick
// the recent finished jobs without knowing state names. Locks are keyed by their fence:
// every acquisition has its own, and one job may lock the same dataset twice.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS agents (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  version TEXT NOT NULL,
  data_address TEXT NOT NULL,
  recv_roots TEXT NOT NULL,
  max_recvs INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY,
  state TEXT NOT NULL,
  final INTEGER NOT NULL,
  source_agent TEXT NOT NULL,
  source_dataset TEXT NOT NULL,
  target_agent TEXT NOT NULL,
  target_dataset TEXT NOT NULL,
  recursive INTEGER NOT NULL,
  force INTEGER NOT NULL,
  fence INTEGER NOT NULL,
  error TEXT NOT NULL,
  error_code TEXT NOT NULL,
  warnings TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  ended_ms INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  hops_done INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_final ON jobs (final, id);
CREATE TABLE IF NOT EXISTS hops (
  job INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  n INTEGER NOT NULL,
  dataset TEXT NOT NULL,
  from_snap TEXT NOT NULL,
  to_snap TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  state TEXT NOT NULL,
  seconds REAL NOT NULL,
  error TEXT NOT NULL,
  PRIMARY KEY (job, n)
);
CREATE TABLE IF NOT EXISTS locks (
  fence INTEGER PRIMARY KEY,
  agent TEXT NOT NULL,
  dataset TEXT NOT NULL,
  recursive INTEGER NOT NULL,
  job INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS locks_job ON locks (job);
CREATE TABLE IF NOT EXISTS placements (
  source_agent TEXT NOT NULL,
  source_dataset TEXT NOT NULL,
  target_agent TEXT NOT NULL,
  target_dataset TEXT NOT NULL,
  PRIMARY KEY (source_agent, source_dataset)
);
CREATE TABLE IF NOT EXISTS counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
)sql";

constexpr const char* kJobColumns =
    "id, state, source_agent, source_dataset, target_agent, target_dataset, recursive, "
    "force, fence, error, error_code, warnings, created_ms, ended_ms, bytes, hops_done";

Status db_error(sqlite3* db, const std::string& path) {
  return Status(Code::kIoError, "database " + path + ": " + sqlite3_errmsg(db));
}

// Prepared statements kept per connection and used again: preparing costs more than
// running most of the broker's statements (it was most of the store's CPU under the
// broker benchmark's job load). A Stmt takes one here, or prepares one when none is
// free (the first time, or while the same SQL is in use further up the stack), and
// gives it back reset.
class StmtCache {
 public:
  sqlite3_stmt* take(sqlite3* db, const char* sql, int* rc) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(Key{db, sql});
      if (it != free_.end() && !it->second.empty()) {
        sqlite3_stmt* s = it->second.back();
        it->second.pop_back();
        *rc = SQLITE_OK;
        return s;
      }
    }
    sqlite3_stmt* s = nullptr;
    *rc = sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
    return s;
  }
  void give_back(sqlite3* db, sqlite3_stmt* s) {
    if (s == nullptr) return;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    std::lock_guard<std::mutex> lock(mu_);
    free_[Key{db, sqlite3_sql(s)}].push_back(s);
  }
  // Before the connection closes.
  void drop(sqlite3* db) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = free_.begin(); it != free_.end();) {
      if (it->first.first != db) {
        ++it;
        continue;
      }
      for (sqlite3_stmt* s : it->second) sqlite3_finalize(s);
      it = free_.erase(it);
    }
  }

 private:
  using Key = std::pair<sqlite3*, std::string>;
  std::mutex mu_;
  std::map<Key, std::vector<sqlite3_stmt*>> free_;
};

StmtCache& stmt_cache() {
  static StmtCache cache;
  return cache;
}

// One prepared statement. Parameters are bound in order with bind(); the first failure
// (prepare or bind) sticks and is reported by step(), so call sites read straight.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path) {
    stmt_ = stmt_cache().take(db, sql, &rc_);
  }
  ~Stmt() { stmt_cache().give_back(db_, stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(const std::string& v) {
    return check(sqlite3_bind_text(stmt_, ++index_, v.data(), static_cast<int>(v.size()),
                                   SQLITE_TRANSIENT));
  }
  // Unsigned 64-bit values are stored as their int64 bit pattern and read back the same
  // way, so ids and counters round-trip whole.
  template <std::integral T>
  Stmt& bind(T v) {
    return check(sqlite3_bind_int64(stmt_, ++index_, static_cast<sqlite3_int64>(v)));
  }
  Stmt& bind(double v) { return check(sqlite3_bind_double(stmt_, ++index_, v)); }

  // True with a row to read, false when done.
  Result<bool> step() {
    if (rc_ != SQLITE_OK) return db_error(db_, path_);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_error(db_, path_);
  }
  Status run() { return step().status(); }

  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  uint64_t u64(int col) const { return static_cast<uint64_t>(sqlite3_column_int64(stmt_, col)); }
  bool flag(int col) const { return sqlite3_column_int64(stmt_, col) != 0; }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }

 private:
  Stmt& check(int rc) {
    if (rc_ == SQLITE_OK) rc_ = rc;
    return *this;
  }

  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
  int index_ = 0;
};

// Runs constant SQL (pragmas, schema, transaction control): never carries values.
Status exec(sqlite3* db, const std::string& path, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return db_error(db, path);
  return Status::Ok();
}

// Rolls back unless committed, so every early error return leaves the database as it was.
// Writers take the write lock up front (IMMEDIATE) so they never fail half-way on a
// lock upgrade; readers only want one consistent snapshot (DEFERRED).
class Transaction {
 public:
  enum Kind { kRead, kWrite };
  Transaction(sqlite3* db, const std::string& path, Kind kind)
      : db_(db), path_(path), kind_(kind) {}
  ~Transaction() {
    if (begun_ && !done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status begin() {
    ZPS_RETURN_IF_ERROR(exec(db_, path_, kind_ == kWrite ? "BEGIN IMMEDIATE" : "BEGIN"));
    begun_ = true;
    return Status::Ok();
  }
  Status commit() {
    ZPS_RETURN_IF_ERROR(exec(db_, path_, "COMMIT"));
    done_ = true;
    return Status::Ok();
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  Kind kind_;
  bool begun_ = false;
  bool done_ = false;
};

std::string list_to_json(const std::vector<std::string>& list) {
  // Warnings may quote zfs stderr, which need not be UTF-8: replace, never throw.
  return nlohmann::json(list).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<std::vector<std::string>> list_from_json(const std::string& text,
                                                const std::string& path) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  std::vector<std::string> out;
  bool ok = j.is_array();
  for (size_t i = 0; ok && i < j.size(); ++i) {
    ok = j[i].is_string();
    if (ok) out.push_back(j[i].get<std::string>());
  }
  if (!ok) return Status(Code::kIoError, "database " + path + ": corrupt list " + text);
  return out;
}

// mkdir -p, with the state directory itself private to the broker's user (parents get
// the usual mode). An existing directory keeps whatever mode the operator gave it.
Status make_state_dir(const std::string& dir) {
  auto fail = [&dir](const std::error_code& ec) {
    return Status(Code::kIoError, "cannot create state directory " + dir + ": " + ec.message());
  };
  std::error_code ec;
  std::filesystem::path p(dir);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  if (ec) return fail(ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(std::error_code(errno, std::generic_category()));
  }
  if (!std::filesystem::is_directory(p, ec)) {
    return fail(ec ? ec : std::make_error_code(std::errc::not_a_directory));
  }
  return Status::Ok();
}

Status configure(sqlite3* db, const std::string& path) {
  if (sqlite3_busy_timeout(db, kBusyTimeoutMs) != SQLITE_OK) return db_error(db, path);
  Stmt wal(db, path, "PRAGMA journal_mode=WAL");
  auto row = wal.step();
  if (!row.ok()) return row.status();
  if (!*row || wal.text(0) != "wal") {
    return Status(Code::kIoError, "database " + path +
                                      ": cannot switch to WAL mode (is the file system local?)");
  }
  ZPS_RETURN_IF_ERROR(exec(db, path, "PRAGMA synchronous=NORMAL"));
  return exec(db, path, "PRAGMA foreign_keys=ON");
}

Status create_schema(sqlite3* db, const std::string& path) {
  Stmt version(db, path, "PRAGMA user_version");
  auto row = version.step();
  if (!row.ok()) return row.status();
  uint64_t found = *row ? version.u64(0) : 0;
  if (found > kSchemaVersion) {
    return Status(Code::kIoError, "database " + path + " has schema version " +
                                      std::to_string(found) + ", newer than this broker's " +
                                      std::to_string(kSchemaVersion) +
                                      ": run a newer zps-broker or use another --state-dir");
  }
  Transaction tx(db, path, Transaction::kWrite);
  ZPS_RETURN_IF_ERROR(tx.begin());
  ZPS_RETURN_IF_ERROR(exec(db, path, kSchema));
  static_assert(kSchemaVersion == 1, "update the user_version pragma below");
  ZPS_RETURN_IF_ERROR(exec(db, path, "PRAGMA user_version = 1"));
  return tx.commit();
}

Job read_job_row(const Stmt& s, std::vector<std::string> warnings) {
  Job j;
  j.id = s.u64(0);
  j.state = state_from_name(s.text(1));
  j.source_agent = s.text(2);
  j.source_dataset = s.text(3);
  j.target_agent = s.text(4);
  j.target_dataset = s.text(5);
  j.recursive = s.flag(6);
  j.force = s.flag(7);
  j.fence = s.u64(8);
  j.error = s.text(9);
  j.error_code = s.text(10);
  j.warnings = std::move(warnings);
  j.created_ms = s.u64(12);
  j.ended_ms = s.u64(13);
  j.bytes = s.u64(14);
  j.hops_done = static_cast<uint32_t>(s.u64(15));
  return j;
}

// Reads every job row a statement yields (columns as in kJobColumns), without hops.
Result<std::vector<Job>> read_jobs(Stmt& s, const std::string& path) {
  std::vector<Job> jobs;
  for (;;) {
    auto row = s.step();
    if (!row.ok()) return row.status();
    if (!*row) return jobs;
    auto warnings = list_from_json(s.text(11), path);
    if (!warnings.ok()) return warnings.status();
    jobs.push_back(read_job_row(s, std::move(*warnings)));
  }
}

Status read_hops(sqlite3* db, const std::string& path, Job& job) {
  Stmt s(db, path,
         "SELECT n, dataset, from_snap, to_snap, bytes, state, seconds, error "
         "FROM hops WHERE job = ? ORDER BY n");
  s.bind(job.id);
  job.hops.clear();
  for (;;) {
    auto row = s.step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Ok();
    proto::HopInfo h;
    h.n = static_cast<uint32_t>(s.u64(0));
    h.dataset = s.text(1);
    h.from = s.text(2);
    h.to = s.text(3);
    h.bytes = s.u64(4);
    h.state = s.text(5);
    h.seconds = s.real(6);
    h.error = s.text(7);
    job.hops.push_back(std::move(h));
  }
}

Status write_hop(sqlite3* db, const std::string& path, uint64_t job, const proto::HopInfo& h) {
  Stmt s(db, path,
         "INSERT INTO hops (job, n, dataset, from_snap, to_snap, bytes, state, seconds, error) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT (job, n) DO UPDATE SET dataset = excluded.dataset, "
         "from_snap = excluded.from_snap, to_snap = excluded.to_snap, bytes = excluded.bytes, "
         "state = excluded.state, seconds = excluded.seconds, error = excluded.error");
  s.bind(job).bind(h.n).bind(h.dataset).bind(h.from).bind(h.to).bind(h.bytes).bind(h.state);
  s.bind(h.seconds).bind(h.error);
  return s.run();
}

// An upsert, not INSERT OR REPLACE: replacing would delete the row and cascade to hops.
Status write_job_row(sqlite3* db, const std::string& path, const Job& j) {
  Stmt s(db, path,
         "INSERT INTO jobs (id, state, final, source_agent, source_dataset, target_agent, "
         "target_dataset, recursive, force, fence, error, error_code, warnings, created_ms, "
         "ended_ms, bytes, hops_done) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT (id) DO UPDATE SET state = excluded.state, final = excluded.final, "
         "source_agent = excluded.source_agent, source_dataset = excluded.source_dataset, "
         "target_agent = excluded.target_agent, target_dataset = excluded.target_dataset, "
         "recursive = excluded.recursive, force = excluded.force, fence = excluded.fence, "
         "error = excluded.error, error_code = excluded.error_code, "
         "warnings = excluded.warnings, created_ms = excluded.created_ms, "
         "ended_ms = excluded.ended_ms, bytes = excluded.bytes, hops_done = excluded.hops_done");
  s.bind(j.id).bind(std::string(state_name(j.state))).bind(is_final(j.state));
  s.bind(j.source_agent).bind(j.source_dataset).bind(j.target_agent).bind(j.target_dataset);
  s.bind(j.recursive).bind(j.force).bind(j.fence).bind(j.error).bind(j.error_code);
  s.bind(list_to_json(j.warnings)).bind(j.created_ms).bind(j.ended_ms).bind(j.bytes);
  s.bind(j.hops_done);
  return s.run();
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string& state_dir) {
  ZPS_RETURN_IF_ERROR(make_state_dir(state_dir));
  std::string path = (std::filesystem::path(state_dir) / "broker.db").string();
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                           nullptr);
  // The Store owns the handle from here on: even a failed open allocates one.
  std::unique_ptr<Store> store(new Store(db, path));
  if (rc != SQLITE_OK) {
    return Status(Code::kIoError, "cannot open database " + path + ": " +
                                      (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
  }
  ZPS_RETURN_IF_ERROR(configure(db, path));
  ZPS_RETURN_IF_ERROR(create_schema(db, path));
  return store;
}

Store::~Store() {
  stmt_cache().drop(db_);
  sqlite3_close_v2(db_);
}

Status Store::save_agent(const AgentRecord& a) {
  Stmt s(db_, path_,
         "INSERT INTO agents (id, host, version, data_address, recv_roots, max_recvs, "
         "last_seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT (id) DO UPDATE SET host = excluded.host, version = excluded.version, "
         "data_address = excluded.data_address, recv_roots = excluded.recv_roots, "
         "max_recvs = excluded.max_recvs, last_seen_ms = excluded.last_seen_ms");
  s.bind(a.id).bind(a.host).bind(a.version).bind(a.data_address);
  s.bind(list_to_json(a.recv_roots)).bind(a.max_recvs).bind(a.last_seen_ms);
  return s.run().with_context("saving agent " + a.id);
}

Result<std::vector<AgentRecord>> Store::load_agents() {
  Stmt s(db_, path_,
         "SELECT id, host, version, data_address, recv_roots, max_recvs, last_seen_ms "
         "FROM agents ORDER BY id");
  std::vector<AgentRecord> agents;
  for (;;) {
    auto row = s.step();
    if (!row.ok()) return row.status().with_context("loading agents");
    if (!*row) return agents;
    auto roots = list_from_json(s.text(4), path_);
    if (!roots.ok()) return roots.status();
    agents.push_back(AgentRecord{s.text(0), s.text(1), s.text(2), s.text(3), std::move(*roots),
                                 static_cast<uint32_t>(s.u64(5)), s.u64(6)});
  }
}

Status Store::save_job(const Job& job) {
  const std::string context = "saving job " + std::to_string(job.id);
  Transaction tx(db_, path_, Transaction::kWrite);
  ZPS_RETURN_IF_ERROR(tx.begin().with_context(context));
  ZPS_RETURN_IF_ERROR(write_job_row(db_, path_, job).with_context(context));
  Stmt clear(db_, path_, "DELETE FROM hops WHERE job = ?");
  clear.bind(job.id);
  ZPS_RETURN_IF_ERROR(clear.run().with_context(context));
  for (const auto& hop : job.hops) {
    ZPS_RETURN_IF_ERROR(write_hop(db_, path_, job.id, hop).with_context(context));
  }
  return tx.commit().with_context(context);
}

Status Store::save_hop(uint64_t job, const proto::HopInfo& hop) {
  return write_hop(db_, path_, job, hop)
      .with_context("saving hop " + std::to_string(hop.n) + " of job " + std::to_string(job));
}

Result<std::vector<Job>> Store::load_jobs(size_t recent) {
  // One read transaction, so jobs and their hops come from the same snapshot.
  Transaction tx(db_, path_, Transaction::kRead);
  ZPS_RETURN_IF_ERROR(tx.begin());
  Stmt s(db_, path_,
         (std::string("SELECT ") + kJobColumns +
          " FROM jobs WHERE final = 0 OR id IN "
          "(SELECT id FROM jobs WHERE final = 1 ORDER BY id DESC LIMIT ?) ORDER BY id")
             .c_str());
  s.bind(recent);
  auto jobs = read_jobs(s, path_);
  if (!jobs.ok()) return jobs.status().with_context("loading jobs");
  for (Job& job : *jobs) {
    ZPS_RETURN_IF_ERROR(read_hops(db_, path_, job).with_context("loading jobs"));
  }
  ZPS_RETURN_IF_ERROR(tx.commit());
  return jobs;
}

Result<std::optional<Job>> Store::load_job(uint64_t id) {
  const std::string context = "loading job " + std::to_string(id);
  Transaction tx(db_, path_, Transaction::kRead);
  ZPS_RETURN_IF_ERROR(tx.begin().with_context(context));
  Stmt s(db_, path_, (std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?").c_str());
  s.bind(id);
  auto jobs = read_jobs(s, path_);
  if (!jobs.ok()) return jobs.status().with_context(context);
  if (jobs->empty()) return std::optional<Job>();
  Job job = std::move(jobs->front());
  ZPS_RETURN_IF_ERROR(read_hops(db_, path_, job).with_context(context));
  ZPS_RETURN_IF_ERROR(tx.commit().with_context(context));
  return std::optional<Job>(std::move(job));
}

Status Store::save_lock(const Lock& lock) {
  Stmt s(db_, path_,
         "INSERT OR REPLACE INTO locks (fence, agent, dataset, recursive, job) "
         "VALUES (?, ?, ?, ?, ?)");
  s.bind(lock.fence).bind(lock.agent).bind(lock.dataset).bind(lock.recursive).bind(lock.job);
  return s.run().with_context("saving lock " + lock.agent + ":" + lock.dataset);
}

Status Store::delete_locks(uint64_t job) {
  Stmt s(db_, path_, "DELETE FROM locks WHERE job = ?");
  s.bind(job);
  return s.run().with_context("releasing the locks of job " + std::to_string(job));
}

Result<std::vector<Lock>> Store::load_locks() {
  Stmt s(db_, path_, "SELECT agent, dataset, recursive, job, fence FROM locks ORDER BY fence");
  std::vector<Lock> locks;
  for (;;) {
    auto row = s.step();
    if (!row.ok()) return row.status().with_context("loading locks");
    if (!*row) return locks;
    locks.push_back(Lock{s.text(0), s.text(1), s.flag(2), s.u64(3), s.u64(4)});
  }
}

Status Store::save_placement(const Placement& p) {
  Stmt s(db_, path_,
         "INSERT OR REPLACE INTO placements (source_agent, source_dataset, target_agent, "
         "target_dataset) VALUES (?, ?, ?, ?)");
  s.bind(p.source_agent).bind(p.source_dataset).bind(p.target_agent).bind(p.target_dataset);
  return s.run().with_context("saving the placement of " + p.source_agent + ":" +
                              p.source_dataset);
}

Result<std::optional<Placement>> Store::find_placement(const std::string& source_agent,
                                                       const std::string& source_dataset) {
  Stmt s(db_, path_,
         "SELECT target_agent, target_dataset FROM placements "
         "WHERE source_agent = ? AND source_dataset = ?");
  s.bind(source_agent).bind(source_dataset);
  auto row = s.step();
  if (!row.ok()) {
    return row.status().with_context("finding the placement of " + source_agent + ":" +
                                     source_dataset);
  }
  if (!*row) return std::optional<Placement>();
  return std::optional<Placement>(Placement{source_agent, source_dataset, s.text(0), s.text(1)});
}

Result<uint64_t> Store::get_counter(const std::string& name, uint64_t initial) {
  Stmt s(db_, path_, "SELECT value FROM counters WHERE name = ?");
  s.bind(name);
  auto row = s.step();
  if (!row.ok()) return row.status().with_context("reading counter " + name);
  return *row ? s.u64(0) : initial;
}

Status Store::set_counter(const std::string& name, uint64_t value) {
  Stmt s(db_, path_,
         "INSERT INTO counters (name, value) VALUES (?, ?) "
         "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
  s.bind(name).bind(value);
  return s.run().with_context("setting counter " + name);
}

}  // namespace zps::broker
