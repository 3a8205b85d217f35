#include "broker/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace zps::broker {
namespace {

namespace fs = std::filesystem;

// Each test gets its own state directory under /tmp, removed afterwards.
class StoreTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/zps-store-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    state_dir_ = tmp_ + "/state";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  std::unique_ptr<Store> open_store() {
    auto store = Store::open(state_dir_);
    EXPECT_TRUE(store.ok()) << store.status().to_string();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::string tmp_;
  std::string state_dir_;
};

proto::HopInfo hop(uint32_t n, const std::string& from, const std::string& to,
                   const std::string& state) {
  proto::HopInfo h;
  h.n = n;
  h.dataset = "zones/test";
  h.from = from;
  h.to = to;
  h.bytes = 1000 * n;
  h.state = state;
  h.seconds = 0.5 * n;
  h.error = state == "failed" ? "zfs recv exited 1" : "";
  return h;
}

Job job(uint64_t id, JobState state) {
  Job j;
  j.id = id;
  j.state = state;
  j.source_agent = "node1";
  j.source_dataset = "zones/test";
  j.target_agent = "node2";
  j.target_dataset = "backup/zones/test";
  j.recursive = id % 2 == 0;
  j.force = true;
  j.fence = 100 + id;
  j.warnings = {"snapshot @s3 was destroyed during the sync", "line one\nline two"};
  j.created_ms = 1700000000000 + id;
  j.ended_ms = is_final(state) ? j.created_ms + 5 : 0;
  j.bytes = 12345;
  j.hops_done = 1;
  if (state == JobState::kFailed) {
    j.error = "target backup/zones/test has snapshots newer than @s7";
    j.error_code = "target_newer";
  }
  return j;
}

void expect_same_hop(const proto::HopInfo& a, const proto::HopInfo& b) {
  EXPECT_EQ(a.n, b.n);
  EXPECT_EQ(a.dataset, b.dataset);
  EXPECT_EQ(a.from, b.from);
  EXPECT_EQ(a.to, b.to);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.state, b.state);
  EXPECT_DOUBLE_EQ(a.seconds, b.seconds);
  EXPECT_EQ(a.error, b.error);
}

void expect_same_job(const Job& a, const Job& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.source_agent, b.source_agent);
  EXPECT_EQ(a.source_dataset, b.source_dataset);
  EXPECT_EQ(a.target_agent, b.target_agent);
  EXPECT_EQ(a.target_dataset, b.target_dataset);
  EXPECT_EQ(a.recursive, b.recursive);
  EXPECT_EQ(a.force, b.force);
  EXPECT_EQ(a.fence, b.fence);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.error_code, b.error_code);
  EXPECT_EQ(a.warnings, b.warnings);
  EXPECT_EQ(a.created_ms, b.created_ms);
  EXPECT_EQ(a.ended_ms, b.ended_ms);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.hops_done, b.hops_done);
  ASSERT_EQ(a.hops.size(), b.hops.size());
  for (size_t i = 0; i < a.hops.size(); ++i) expect_same_hop(a.hops[i], b.hops[i]);
}

std::vector<uint64_t> ids(const std::vector<Job>& jobs) {
  std::vector<uint64_t> out;
  for (const Job& j : jobs) out.push_back(j.id);
  return out;
}

TEST_F(StoreTest, CreatesThePrivateStateDirectoryAndDatabase) {
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->path(), state_dir_ + "/broker.db");
  EXPECT_TRUE(fs::is_regular_file(store->path()));
  struct stat st {};
  ASSERT_EQ(::stat(state_dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(StoreTest, AgentsRoundTrip) {
  auto store = open_store();
  ASSERT_TRUE(store);
  AgentRecord a{"node2", "node2.example", "0.1.0", "tcp://10.0.0.2:6900",
                {"backup", "tank/recv"}, 4, 1700000000123};
  ASSERT_TRUE(store->save_agent(a).ok());
  a.last_seen_ms += 1000;
  a.recv_roots = {};
  ASSERT_TRUE(store->save_agent(a).ok());  // re-registration replaces
  ASSERT_TRUE(store->save_agent(AgentRecord{"node1", "h1", "0.1.0", "", {}, 0, 1}).ok());

  auto agents = store->load_agents();
  ASSERT_TRUE(agents.ok()) << agents.status().to_string();
  ASSERT_EQ(agents->size(), 2u);
  EXPECT_EQ((*agents)[0].id, "node1");
  const AgentRecord& b = (*agents)[1];
  EXPECT_EQ(b.id, "node2");
  EXPECT_EQ(b.host, "node2.example");
  EXPECT_EQ(b.version, "0.1.0");
  EXPECT_EQ(b.data_address, "tcp://10.0.0.2:6900");
  EXPECT_TRUE(b.recv_roots.empty());
  EXPECT_EQ(b.max_recvs, 4u);
  EXPECT_EQ(b.last_seen_ms, 1700000001123u);
}

TEST_F(StoreTest, AgentReceiveRootsRoundTrip) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->save_agent(AgentRecord{"n", "h", "v", "a", {"backup", "tank/r"}, 2, 3}).ok());
  auto agents = store->load_agents();
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].recv_roots, (std::vector<std::string>{"backup", "tank/r"}));
}

TEST_F(StoreTest, JobWithHopsRoundTrips) {
  auto store = open_store();
  ASSERT_TRUE(store);
  Job j = job(7, JobState::kRunning);
  j.hops = {hop(1, "", "s1", "succeeded"), hop(2, "s1", "s2", "running")};
  ASSERT_TRUE(store->save_job(j).ok());

  auto loaded = store->load_job(7);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  ASSERT_TRUE(loaded->has_value());
  expect_same_job(**loaded, j);
}

TEST_F(StoreTest, SaveHopUpdatesAndAddsHops) {
  auto store = open_store();
  ASSERT_TRUE(store);
  Job j = job(3, JobState::kRunning);
  j.hops = {hop(1, "", "s1", "running")};
  ASSERT_TRUE(store->save_job(j).ok());

  ASSERT_TRUE(store->save_hop(3, hop(1, "", "s1", "succeeded")).ok());
  ASSERT_TRUE(store->save_hop(3, hop(2, "s1", "s2", "failed")).ok());

  auto loaded = store->load_job(3);
  ASSERT_TRUE(loaded.ok());
  ASSERT_TRUE(loaded->has_value());
  ASSERT_EQ((*loaded)->hops.size(), 2u);
  expect_same_hop((*loaded)->hops[0], hop(1, "", "s1", "succeeded"));
  expect_same_hop((*loaded)->hops[1], hop(2, "s1", "s2", "failed"));
}

TEST_F(StoreTest, SaveJobReplacesItsHops) {
  auto store = open_store();
  ASSERT_TRUE(store);
  Job j = job(4, JobState::kRunning);
  j.hops = {hop(1, "", "s1", "succeeded"), hop(2, "s1", "s2", "failed")};
  ASSERT_TRUE(store->save_job(j).ok());
  j.state = JobState::kSucceeded;
  j.hops = {hop(1, "", "s1", "succeeded")};
  ASSERT_TRUE(store->save_job(j).ok());

  auto loaded = store->load_job(4);
  ASSERT_TRUE(loaded.ok());
  ASSERT_TRUE(loaded->has_value());
  expect_same_job(**loaded, j);
}

TEST_F(StoreTest, SaveHopOfAnUnknownJobFailsNamingTheDatabase) {
  auto store = open_store();
  ASSERT_TRUE(store);
  Status s = store->save_hop(99, hop(1, "", "s1", "running"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kIoError);
  EXPECT_NE(s.message().find("job 99"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(store->path()), std::string::npos) << s.message();
}

TEST_F(StoreTest, LoadJobMissesUnknownId) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto loaded = store->load_job(42);
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->has_value());
}

TEST_F(StoreTest, LoadJobsKeepsActiveJobsAndTheNewestFinishedOnes) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const JobState states[] = {JobState::kSucceeded, JobState::kRunning, JobState::kFailed,
                             JobState::kCancelled, JobState::kQueued, JobState::kSucceeded};
  for (uint64_t id = 1; id <= 6; ++id) {
    Job j = job(id, states[id - 1]);
    j.hops = {hop(1, "", "s" + std::to_string(id), "succeeded")};
    ASSERT_TRUE(store->save_job(j).ok());
  }

  auto two = store->load_jobs(2);
  ASSERT_TRUE(two.ok()) << two.status().to_string();
  EXPECT_EQ(ids(*two), (std::vector<uint64_t>{2, 4, 5, 6}));
  for (const Job& j : *two) {
    ASSERT_EQ(j.hops.size(), 1u);
    EXPECT_EQ(j.hops[0].to, "s" + std::to_string(j.id));
  }
  auto none = store->load_jobs(0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(ids(*none), (std::vector<uint64_t>{2, 5}));
  auto all = store->load_jobs(100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(ids(*all), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
}

TEST_F(StoreTest, LocksSaveDeleteByJobAndLoad) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->save_lock(Lock{"dst1", "backup/a", true, 1, 10}).ok());
  ASSERT_TRUE(store->save_lock(Lock{"dst2", "backup/b", false, 1, 11}).ok());
  ASSERT_TRUE(store->save_lock(Lock{"dst1", "backup/c", false, 2, 12}).ok());
  // A job may lock the same dataset twice; both locks are kept.
  ASSERT_TRUE(store->save_lock(Lock{"dst1", "backup/c", false, 2, 13}).ok());

  auto locks = store->load_locks();
  ASSERT_TRUE(locks.ok()) << locks.status().to_string();
  ASSERT_EQ(locks->size(), 4u);
  const Lock& first = (*locks)[0];
  EXPECT_EQ(first.agent, "dst1");
  EXPECT_EQ(first.dataset, "backup/a");
  EXPECT_TRUE(first.recursive);
  EXPECT_EQ(first.job, 1u);
  EXPECT_EQ(first.fence, 10u);

  ASSERT_TRUE(store->delete_locks(1).ok());
  locks = store->load_locks();
  ASSERT_TRUE(locks.ok());
  ASSERT_EQ(locks->size(), 2u);
  EXPECT_EQ((*locks)[0].job, 2u);
  EXPECT_EQ((*locks)[1].fence, 13u);
}

TEST_F(StoreTest, PlacementsSaveReplaceFindAndMiss) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->save_placement({"node1", "zones/test", "node2", "backup/node1/zones/test"})
                  .ok());
  auto found = store->find_placement("node1", "zones/test");
  ASSERT_TRUE(found.ok()) << found.status().to_string();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->source_agent, "node1");
  EXPECT_EQ((*found)->source_dataset, "zones/test");
  EXPECT_EQ((*found)->target_agent, "node2");
  EXPECT_EQ((*found)->target_dataset, "backup/node1/zones/test");

  ASSERT_TRUE(store->save_placement({"node1", "zones/test", "node3", "tank/zones/test"}).ok());
  found = store->find_placement("node1", "zones/test");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->target_agent, "node3");
  EXPECT_EQ((*found)->target_dataset, "tank/zones/test");

  auto miss = store->find_placement("node1", "zones/other");
  ASSERT_TRUE(miss.ok());
  EXPECT_FALSE(miss->has_value());
  miss = store->find_placement("node9", "zones/test");
  ASSERT_TRUE(miss.ok());
  EXPECT_FALSE(miss->has_value());
}

TEST_F(StoreTest, CountersStartAtInitialAndKeepFullWidth) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto fresh = store->get_counter("next_job", 1);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(*fresh, 1u);
  ASSERT_TRUE(store->set_counter("next_job", 17).ok());
  ASSERT_TRUE(store->set_counter("next_job", 18).ok());
  ASSERT_TRUE(store->set_counter("next_fence", UINT64_MAX - 1).ok());
  EXPECT_EQ(*store->get_counter("next_job", 1), 18u);
  EXPECT_EQ(*store->get_counter("next_fence", 1), UINT64_MAX - 1);
}

TEST_F(StoreTest, EverythingSurvivesAReopen) {
  Job j = job(5, JobState::kRunning);
  j.hops = {hop(1, "", "s1", "succeeded")};
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->save_agent(AgentRecord{"node2", "h", "v", "tcp://x:1", {"backup"}, 2, 9})
                    .ok());
    ASSERT_TRUE(store->save_job(j).ok());
    ASSERT_TRUE(store->save_hop(5, hop(2, "s1", "s2", "running")).ok());
    ASSERT_TRUE(store->save_lock(Lock{"node2", "backup/zones/test", true, 5, 105}).ok());
    ASSERT_TRUE(store->save_placement({"node1", "zones/test", "node2", "backup/zones/test"})
                    .ok());
    ASSERT_TRUE(store->set_counter("next_job", 6).ok());
  }
  j.hops.push_back(hop(2, "s1", "s2", "running"));

  auto store = open_store();
  ASSERT_TRUE(store);
  auto agents = store->load_agents();
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].recv_roots, std::vector<std::string>{"backup"});
  auto jobs = store->load_jobs(10);
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  expect_same_job((*jobs)[0], j);
  auto locks = store->load_locks();
  ASSERT_TRUE(locks.ok());
  ASSERT_EQ(locks->size(), 1u);
  EXPECT_EQ((*locks)[0].fence, 105u);
  auto placement = store->find_placement("node1", "zones/test");
  ASSERT_TRUE(placement.ok());
  ASSERT_TRUE(placement->has_value());
  EXPECT_EQ((*placement)->target_dataset, "backup/zones/test");
  EXPECT_EQ(*store->get_counter("next_job", 1), 6u);
}

TEST_F(StoreTest, StateDirUnderARegularFileFailsNamingThePath) {
  std::string file = tmp_ + "/plain-file";
  std::ofstream(file) << "not a directory\n";
  std::string bad = file + "/state";
  auto store = Store::open(bad);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kIoError);
  EXPECT_NE(store.status().message().find(bad), std::string::npos) << store.status().message();
}

TEST_F(StoreTest, StateDirThatIsARegularFileFailsNamingThePath) {
  std::ofstream(state_dir_) << "not a directory\n";
  auto store = Store::open(state_dir_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kIoError);
  EXPECT_NE(store.status().message().find(state_dir_), std::string::npos)
      << store.status().message();
}

TEST_F(StoreTest, DatabaseIsInWalMode) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->set_counter("next_job", 2).ok());
  EXPECT_TRUE(fs::exists(store->path() + "-wal"));

  // A second connection sees the mode persisted in the file itself.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(store->path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(StoreTest, NewerSchemaIsRefused) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
  }
  sqlite3* db = nullptr;
  std::string path = state_dir_ + "/broker.db";
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 2", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  auto store = Store::open(state_dir_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kIoError);
  EXPECT_NE(store.status().message().find(path), std::string::npos) << store.status().message();
}

}  // namespace
}  // namespace zps::broker
