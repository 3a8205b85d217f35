// Chaos run (issue 5, item 9): replicate DATASETS datasets of SNAPSHOTS snapshots each
// (small random files) from src1 to dst1, one `zpsctl replicate --detach` job per
// dataset, while the test SIGKILLs and restarts random members of the cluster (src1,
// dst1, the broker) at random moments for CHAOS_SECONDS, re-submitting every job that
// ended without success. Then, with everything up again, every dataset is replicated
// until it succeeds (bounded attempts), and every target is checked against its source
// snapshot by snapshot (guid), file by file (the mounted dataset, and a sample of
// snapshots through clones), for leftovers of partial receives, and that no lock is left.
//
// Bounded: the knobs below are environment variables (defaults keep a run under three
// minutes on a busy 2-core machine):
//   ZPS_CHAOS_DATASETS (10), ZPS_CHAOS_SNAPSHOTS (10), ZPS_CHAOS_SECONDS (60: the
//   chaos ends earlier once every dataset's job has succeeded once),
//   ZPS_CHAOS_FILE_BYTES (32768: the largest file a snapshot adds),
//   ZPS_CHAOS_SNAPSHOT_FILE_CHECKS (10: snapshots whose files are compared through
//   temporary clones, zfs-fuse having no .zfs directory; spread over the datasets),
//   ZPS_CHAOS_SEED (default: from the clock; printed, so a failing run can be replayed).
//
// Prints "CHAOS seed=.. jobs_run=.. kills=.. retries=.. ..." for the lead's notes:
// jobs_run counts every job submitted (chaos phase and settle phase), kills the SIGKILLs
// (by victim), retries the hop retries the sender logged ("retrying in"), reruns the
// jobs submitted again after one of the same dataset ended unsuccessfully.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/cluster.h"
#include "tests/support/replica_check.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

uint64_t knob(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

const std::vector<std::string> kAgentFlags = {"--hop-retries", "3", "--retry-backoff-ms", "200",
                                              "--stall-timeout-ms", "3000"};

struct Figures {
  int jobs_run = 0;
  int kills = 0;
  std::map<std::string, int> kills_of;  // by victim
  int reruns = 0;          // submissions after a job of that dataset had ended unsuccessfully
  int final_attempts = 0;  // replicate runs in the settle phase
  int datasets_checked = 0;
  int snapshots_checked = 0;
  int files_checked = 0;
  int snapshot_files_checked = 0;  // snapshots whose files were compared (clones)
};

int count_files(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec)) {
    if (e.is_regular_file(ec)) ++n;
  }
  return n;
}

class ChaosTest : public ClusterTest {
 protected:
  std::string pool(const std::string& tag) {
    auto p = rig().create_pool(tag, 512ull << 20);
    if (!p.ok()) throw RigError("creating a test pool: " + p.status().message());
    return *p;
  }

  // DATASETS datasets of SNAPSHOTS snapshots; each snapshot adds or rewrites a random
  // file, some also remove one, so incrementals carry writes and frees.
  std::vector<std::string> make_sources(const std::string& src_pool, std::mt19937& rng) {
    const uint64_t datasets = knob("ZPS_CHAOS_DATASETS", 10);
    const uint64_t snaps = knob("ZPS_CHAOS_SNAPSHOTS", 10);
    const uint64_t max_bytes = std::max<uint64_t>(knob("ZPS_CHAOS_FILE_BYTES", 32768), 16);
    std::vector<std::string> out;
    create_dataset(src_pool + "/chaos");
    for (uint64_t d = 0; d < datasets; ++d) {
      const std::string ds = src_pool + "/chaos/d" + std::to_string(d);
      create_dataset(ds);
      for (uint64_t s = 0; s < snaps; ++s) {
        const std::string file = "f" + std::to_string(rng() % 4);
        write_random_file(ds, file, 1 + rng() % max_bytes, static_cast<uint32_t>(rng()));
        if (s % 4 == 3) {
          std::filesystem::remove(mountpoint(ds) + "/f" + std::to_string(rng() % 4));
        }
        snapshot(ds, "s" + std::to_string(s));
      }
      out.push_back(ds);
    }
    return out;
  }

  // Submits a detached job; its id, or 0 when the broker did not take it now.
  uint64_t submit(const std::string& ds) {
    CtlResult r = cluster().ctl({"--timeout", "3", "replicate", "--detach", "src1:" + ds, "dst1"},
                                true, 20s);
    if (r.exit_code != 0 || !r.json.is_object()) return 0;
    return r.json.value("job", 0ull);
  }

  // The state of a job, "" when the broker cannot say now.
  std::string job_state(uint64_t job) {
    CtlResult r = cluster().ctl({"--timeout", "3", "job", std::to_string(job)}, true, 20s);
    return r.json.is_object() ? r.json.value("state", "") : "";
  }

  void kill_and_restart(const std::string& victim, std::mt19937& rng) {
    if (victim == "broker") {
      cluster().stop_broker(SIGKILL);
    } else {
      cluster().stop_agent(victim, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 1500));
    const Status s = victim == "broker" ? cluster().restart_broker(SIGKILL)
                                        : cluster().restart_agent(victim);
    if (!s.ok()) throw RigError("restarting " + victim + ": " + s.message());
  }

  // Compares the files of one snapshot on both sides through temporary clones (zfs-fuse
  // has no .zfs directory), made outside the receive root and destroyed afterwards.
  void check_snapshot_files(const std::string& src, const std::string& dst,
                            const std::string& snap, const std::string& src_pool,
                            const std::string& dst_pool, Figures& f) {
    const std::string ca = src_pool + "/verify-a", cb = dst_pool + "/verify-b";
    zfs({"clone", src + "@" + snap, ca});
    zfs({"clone", dst + "@" + snap, cb});
    EXPECT_EQ(file_difference(rig(), ca, cb), "") << "files of " << src << "@" << snap;
    f.files_checked += count_files(mountpoint(ca));
    ++f.snapshot_files_checked;
    for (const auto& c : {ca, cb}) {
      // zfs-fuse sometimes calls a just-read dataset busy for a moment.
      for (int i = 0; i < 20 && !rig().zfs({"destroy", c}).ok(); ++i) {
        std::this_thread::sleep_for(250ms);
      }
    }
  }
};

TEST_F(ChaosTest, KillsAndRestartsWhileReplicatingThenEverythingConverges) {
  const uint64_t seed = knob("ZPS_CHAOS_SEED", static_cast<uint64_t>(
                                                   Clock::now().time_since_epoch().count()));
  std::cout << "CHAOS seed=" << seed << " (replay with ZPS_CHAOS_SEED=" << seed << ")\n";
  std::mt19937 rng(static_cast<uint32_t>(seed));

  const std::string src_pool = pool("src");
  const std::string dst_pool = pool("dst");
  // A short lease: a lock whose job's sender died mid-hop is freed within the run.
  start_broker({"--lock-lease-s", "15"});
  start_agent({"src1", {}, kAgentFlags});
  start_agent({"dst1", {dst_pool + "/backup"}, kAgentFlags});
  wait_alive({"src1", "dst1"});
  const std::vector<std::string> sources = make_sources(src_pool, rng);

  // ---- Chaos: jobs running, members killed and restarted. ----
  Figures fig;
  std::map<std::string, uint64_t> job_of;   // dataset -> its latest job
  std::set<std::string> succeeded;
  const std::vector<std::string> members = {"broker", "src1", "dst1"};
  const auto chaos_end = Clock::now() + std::chrono::seconds(knob("ZPS_CHAOS_SECONDS", 60));
  auto next_kill = Clock::now() + std::chrono::milliseconds(300 + rng() % 1700);
  auto maybe_kill = [&] {
    if (Clock::now() < next_kill) return;
    const std::string victim = members[rng() % members.size()];
    std::cout << "CHAOS kill " << victim << " ("
              << std::chrono::duration_cast<std::chrono::milliseconds>(chaos_end - Clock::now())
                     .count()
              << " ms before the chaos ends at the latest)\n";
    kill_and_restart(victim, rng);
    ++fig.kills;
    ++fig.kills_of[victim];
    next_kill = Clock::now() + std::chrono::milliseconds(300 + rng() % 1700);
  };
  // Until every dataset's job has succeeded once, or the time is up.
  while (Clock::now() < chaos_end && succeeded.size() < sources.size()) {
    for (const auto& ds : sources) {
      maybe_kill();
      if (succeeded.count(ds)) continue;
      const uint64_t job = job_of[ds];
      const std::string state = job == 0 ? "none" : job_state(job);
      if (state == "succeeded") {
        succeeded.insert(ds);
      } else if (state == "none" || state == "failed" || state == "cancelled") {
        if (const uint64_t id = submit(ds); id != 0) {
          job_of[ds] = id;
          ++fig.jobs_run;
          if (state != "none") ++fig.reruns;
        }
      }
    }
    std::this_thread::sleep_for(100ms);
  }

  // ---- Settle: everything up, every dataset replicated until it succeeds. ----
  wait_alive({"src1", "dst1"});
  for (const auto& ds : sources) {
    bool ok = false;
    std::string last;
    for (int attempt = 0; attempt < 12 && !ok; ++attempt) {
      ++fig.final_attempts;
      ++fig.jobs_run;
      const CtlResult r = cluster().ctl({"replicate", "src1:" + ds, "dst1"}, true, 120s);
      ok = r.exit_code == 0;
      last = r.describe();
      // Refused while the lock of a job cut short is still held (until the receiver
      // reports it idle, or the lease): wait and try again.
      if (!ok) std::this_thread::sleep_for(r.exit_code == 4 ? 2s : 500ms);
    }
    ASSERT_TRUE(ok) << ds << " did not replicate after the chaos; last try: " << last;
  }

  // ---- Check: guids, files, leftovers, locks. ----
  for (const auto& ds : sources) {
    const std::string dst = dst_pool + "/backup/src1/" + ds;
    EXPECT_EQ(snapshot_difference(rig(), ds, dst), "") << ds;
    EXPECT_EQ(file_difference(rig(), ds, dst), "") << ds;
    fig.snapshots_checked += static_cast<int>(snapshots(ds).size());
    fig.files_checked += count_files(mountpoint(ds));
    ++fig.datasets_checked;
  }
  const uint64_t samples = knob("ZPS_CHAOS_SNAPSHOT_FILE_CHECKS", 10);
  for (uint64_t i = 0; i < samples && !sources.empty(); ++i) {
    const std::string& ds = sources[i % sources.size()];
    const auto snaps = snapshots(ds);
    if (snaps.empty()) continue;
    check_snapshot_files(ds, dst_pool + "/backup/src1/" + ds, snaps[rng() % snaps.size()].name,
                         src_pool, dst_pool, fig);
  }
  EXPECT_EQ(partial_receives(rig(), dst_pool), std::vector<std::string>{});
  CtlResult locks;
  for (auto until = Clock::now() + 30s; Clock::now() < until;) {
    locks = cluster().ctl({"locks"});
    if (locks.exit_code == 0 && locks.json.is_array() && locks.json.empty()) break;
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(locks.json.is_array() && locks.json.empty()) << "locks left: " << locks.describe();

  const int retries =
      static_cast<int>(log_lines_with(cluster().dir() + "/src1.log", "retrying in").size());
  std::cout << "CHAOS seed=" << seed << " jobs_run=" << fig.jobs_run << " kills=" << fig.kills
            << " (broker " << fig.kills_of["broker"] << ", src1 " << fig.kills_of["src1"]
            << ", dst1 " << fig.kills_of["dst1"] << ") retries=" << retries << " reruns=" << fig.reruns
            << " final_attempts=" << fig.final_attempts
            << " datasets_checked=" << fig.datasets_checked
            << " snapshots_checked=" << fig.snapshots_checked
            << " files_checked=" << fig.files_checked
            << " snapshot_file_checks=" << fig.snapshot_files_checked << "\n";
}

}  // namespace
}  // namespace zps::test
