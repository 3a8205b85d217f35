// Replication through the whole system: a real zps-broker, a sending agent (src1) and a
// receiving agent (dst1) as separate processes, each on its own zfs-fuse pool as if it
// were its own node, driven by the real zpsctl. What the issue asks of a replication:
// one `-i` hop per snapshot pair and never `-I`, the seed's snapshots in creation order,
// clones kept as clones when their origin is there, `-r` with a clone among the
// children, a source that changes while a job runs, and a receiver that takes several
// receives at once.
//
// Test 6 prints "MEASURE peak_concurrent_recv=N" (the receiving agent's own count, as
// `zpsctl agents` shows it) for the lead's notes.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/cluster.h"
#include "tests/support/send_gate.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kSeedSnapshots = {"now",   "now2",  "8550", "18569",
                                                 "20392", "30577", "4387"};

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// The `zfs send` lines of an agent's --zfs-log.
std::vector<std::string> send_commands(const std::vector<std::string>& zfs_log) {
  std::vector<std::string> out;
  for (const auto& line : zfs_log) {
    const auto w = words(line);
    if (w.size() > 1 && w[1] == "send") out.push_back(line);
  }
  return out;
}

bool has_word(const std::string& line, const std::string& word) {
  const auto w = words(line);
  return std::find(w.begin(), w.end(), word) != w.end();
}

std::vector<std::string> hop_targets(const nlohmann::json& job) {
  std::vector<std::string> out;
  if (!job.contains("hops")) return out;
  for (const auto& h : job["hops"]) out.push_back(h.value("to", ""));
  return out;
}

bool is_final(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

// zfs recv processes that `parent` runs now, read from /proc: what the system saw,
// independent of the agent's own bookkeeping.
int count_recv_children(pid_t parent) {
  int n = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream rest(line.substr(paren + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent || state == 'Z') continue;
    std::ifstream cmd(entry.path() / "cmdline");
    std::string argv0, argv1;
    std::getline(cmd, argv0, '\0');
    std::getline(cmd, argv1, '\0');
    if (std::filesystem::path(argv0).filename() == "zfs" &&
        (argv1 == "recv" || argv1 == "receive")) {
      ++n;
    }
  }
  return n;
}

class ReplicateTest : public ClusterTest {
 protected:
  // Two nodes: src1 only sends (no receive root), dst1 receives into <dst>/backup.
  void start_nodes(uint64_t pool_size = 256ull << 20,
                   const std::vector<std::string>& dst_extra = {},
                   const std::vector<std::string>& src_extra = {}) {
    src_ = pool("src", pool_size);
    dst_ = pool("dst", pool_size);
    start_broker();
    start_agent({"src1", {}, src_extra});
    start_agent({"dst1", {dst_ + "/backup"}, dst_extra});
    wait_alive({"src1", "dst1"});
  }

  std::string pool(const std::string& tag, uint64_t size) {
    auto p = rig().create_pool(tag, size);
    if (!p.ok()) throw RigError("creating a test pool: " + p.status().message());
    return *p;
  }

  // Where a target given as the agent alone lands.
  std::string target_of(const std::string& source) const {
    return dst_ + "/backup/src1/" + source;
  }

  CtlResult replicate(const std::string& source, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"replicate", "src1:" + source, "dst1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return cluster().ctl(args);
  }

  std::string origin_of(const std::string& dataset) {
    return trimmed(zfs({"get", "-H", "-o", "value", "origin", dataset}));
  }

  // Same snapshots, by name and guid, in the same creation order.
  void expect_same_snapshots(const std::string& source, const std::string& target) {
    std::vector<std::pair<std::string, uint64_t>> a, b;
    for (const auto& s : snapshots(source)) a.emplace_back(s.name, s.guid);
    for (const auto& s : snapshots(target)) b.emplace_back(s.name, s.guid);
    EXPECT_FALSE(a.empty()) << source << " has no snapshots";
    EXPECT_EQ(a, b) << "snapshots (name, guid) of " << source << " and " << target;
  }

  void expect_no_range_sends() {
    for (const auto& line : send_commands(cluster().zfs_commands("src1"))) {
      EXPECT_FALSE(has_word(line, "-I")) << "the sender used a range send: " << line;
    }
  }

  std::string src_;
  std::string dst_;
};

// 1. A full send, then one `zfs send -i` per snapshot pair: 30 of them.
TEST_F(ReplicateTest, FullSendThenThirtyIncrementalHops) {
  start_nodes();
  const std::string src = src_ + "/chain";
  create_dataset(src);
  std::vector<std::string> names;
  for (int i = 0; i <= 30; ++i) {
    write_file(src, "step", "step " + std::to_string(i) + "\n");
    write_random_file(src, "data-" + std::to_string(i % 4), 4096 + i * 97,
                      static_cast<uint32_t>(i));
    names.push_back("s" + std::to_string(i));
    snapshot(src, names.back());
  }

  const CtlResult r = replicate(src);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(r.json.is_object()) << r.describe();
  EXPECT_EQ(r.json.value("state", ""), "succeeded");
  EXPECT_EQ(r.json.value("error", "x"), "");
  const auto& hops = r.json["hops"];
  ASSERT_EQ(hops.size(), 31u) << r.describe();
  EXPECT_EQ(r.json.value("hops_done", 0u), 31u);
  EXPECT_EQ(hops[0].value("from", "x"), "") << "the first hop is a full send";
  for (size_t i = 0; i < hops.size(); ++i) {
    EXPECT_EQ(hops[i].value("to", ""), names[i]) << "hop " << i + 1;
    EXPECT_EQ(hops[i].value("state", ""), "succeeded") << "hop " << i + 1;
    EXPECT_GT(hops[i].value("bytes", 0u), 0u) << "hop " << i + 1;
    if (i > 0) {
      EXPECT_EQ(hops[i].value("from", ""), names[i - 1]) << "hop " << i + 1;
    }
  }

  const std::string dst = target_of(src);
  expect_same_snapshots(src, dst);
  for (const auto& n : names) EXPECT_EQ(guid_of(src + "@" + n), guid_of(dst + "@" + n)) << n;
  expect_same_files(src, dst);

  const auto sends = send_commands(cluster().zfs_commands("src1"));
  EXPECT_EQ(sends.size(), 31u);
  size_t incremental = 0;
  for (const auto& line : sends) incremental += has_word(line, "-i") ? 1 : 0;
  EXPECT_EQ(incremental, 30u);
  expect_no_range_sends();
}

// 1b. Incrementals are first received plain (no -F, no listing of the target). When
// the target was changed since its latest snapshot, zfs recv refuses that, the hop is
// repeated checked (the base is still the latest snapshot, then recv -F discards the
// change), and the dataset's later hops go checked at once.
TEST_F(ReplicateTest, ATargetChangedSinceItsLatestSnapshotIsRepeatedCheckedAndConverges) {
  start_nodes();
  const std::string src = src_ + "/touched";
  create_dataset(src);
  write_file(src, "f", "zero\n");
  snapshot(src, "s0");
  write_file(src, "f", "one\n");
  snapshot(src, "s1");
  CtlResult first = replicate(src);
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  const std::string dst = target_of(src);
  const auto first_recvs = count_containing(cluster().zfs_commands("dst1"), " recv ");
  EXPECT_EQ(count_containing(cluster().zfs_commands("dst1"), " recv -F "), 0u)
      << "the first run's incremental went plain";

  write_file(dst, "stray", "written on the backup\n");
  for (const std::string n : {"s2", "s3"}) {
    write_file(src, "f", n + "\n");
    snapshot(src, n);
  }
  CtlResult second = replicate(src);
  ASSERT_EQ(second.exit_code, 0) << second.describe();
  EXPECT_EQ(second.json.value("state", ""), "succeeded");
  ASSERT_EQ(hop_targets(second.json), (std::vector<std::string>{"s2", "s3"})) << second.describe();
  for (const auto& h : second.json["hops"]) EXPECT_EQ(h.value("state", ""), "succeeded");
  const auto cmds = cluster().zfs_commands("dst1");
  // One refused plain try, then both hops checked.
  EXPECT_EQ(count_containing(cmds, " recv ") - first_recvs, 3u);
  EXPECT_EQ(count_containing(cmds, " recv -F "), 2u);
  expect_same_snapshots(src, dst);
  expect_same_files(src, dst);  // the stray file is gone with the discarded change
}

// 2. The seed's run: names that say nothing about order arrive in creation order; a
// second run finds nothing to do and says so.
TEST_F(ReplicateTest, SeedSnapshotsArriveInCreationOrderAndRerunIsUpToDate) {
  start_nodes();
  const std::string src = src_ + "/zones/test";
  create_dataset(src_ + "/zones");
  create_dataset(src);
  snapshot(src, "now");
  snapshot(src, "now2");
  write_random_file(src, "payload", 1 << 20, 8550);
  snapshot(src, "8550");
  for (size_t i = 3; i < kSeedSnapshots.size(); ++i) {
    write_random_file(src, "small-" + kSeedSnapshots[i], 15 * 1024, static_cast<uint32_t>(i));
    snapshot(src, kSeedSnapshots[i]);
  }

  const CtlResult first = replicate(src);
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  EXPECT_EQ(hop_targets(first.json), kSeedSnapshots);
  const std::string dst = target_of(src);
  EXPECT_EQ(first.json.value("target", ""), "dst1:" + dst) << first.describe();
  std::vector<std::string> arrived;
  for (const auto& s : snapshots(dst)) arrived.push_back(s.name);
  EXPECT_EQ(arrived, kSeedSnapshots) << "target snapshots in creation order";
  expect_same_snapshots(src, dst);
  expect_same_files(src, dst);

  const size_t sends_before = send_commands(cluster().zfs_commands("src1")).size();
  // No target at all this time: the broker remembers where it placed the dataset.
  const CtlResult again = cluster().ctl({"replicate", "src1:" + src}, /*json=*/false);
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_NE((again.out + again.err).find("up to date"), std::string::npos) << again.describe();
  const CtlResult again_json = replicate(src);
  EXPECT_EQ(again_json.exit_code, 0) << again_json.describe();
  EXPECT_EQ(again_json.json.value("state", ""), "succeeded") << again_json.describe();
  EXPECT_TRUE(hop_targets(again_json.json).empty()) << again_json.describe();
  EXPECT_EQ(send_commands(cluster().zfs_commands("src1")).size(), sends_before)
      << "an up-to-date target must cost no zfs send";
  expect_same_snapshots(src, dst);
  expect_no_range_sends();
}

// 3. A clone arrives as a clone of the target's copy of its origin when that copy is
// there, and as a full, independent copy (with a warning in the job) when it is not.
TEST_F(ReplicateTest, ClonesArriveAsClonesWhenTheirOriginIsThere) {
  start_nodes();
  const std::string base = src_ + "/base";
  create_dataset(base);
  write_random_file(base, "base-data", 256 * 1024, 1);
  snapshot(base, "b1");
  write_file(base, "later", "after b1\n");
  snapshot(base, "b2");
  const std::string clone = src_ + "/clone";
  zfs({"clone", base + "@b1", clone});
  write_file(clone, "own", "the clone's own file\n");
  snapshot(clone, "c1");
  write_file(clone, "own2", "more\n");
  snapshot(clone, "c2");

  const CtlResult base_run = replicate(base);
  ASSERT_EQ(base_run.exit_code, 0) << base_run.describe();
  const CtlResult clone_run = replicate(clone);
  ASSERT_EQ(clone_run.exit_code, 0) << clone_run.describe();
  EXPECT_TRUE(clone_run.json.value("warnings", nlohmann::json::array()).empty())
      << clone_run.describe();
  ASSERT_FALSE(clone_run.json["hops"].empty()) << clone_run.describe();
  EXPECT_EQ(clone_run.json["hops"][0].value("from", ""), base + "@b1")
      << "the clone's first hop starts from its origin";
  EXPECT_EQ(origin_of(target_of(clone)), target_of(base) + "@b1");
  expect_same_snapshots(clone, target_of(clone));
  expect_same_files(clone, target_of(clone));

  // An origin the target never got: the clone comes over whole, and the job says so.
  const std::string lone = src_ + "/lone";
  create_dataset(lone);
  write_random_file(lone, "lone-data", 128 * 1024, 2);
  snapshot(lone, "l1");
  const std::string orphan = src_ + "/orphan";
  zfs({"clone", lone + "@l1", orphan});
  write_file(orphan, "own", "orphan's own\n");
  snapshot(orphan, "o1");
  snapshot(orphan, "o2");

  const CtlResult orphan_run = replicate(orphan);
  ASSERT_EQ(orphan_run.exit_code, 0) << orphan_run.describe();
  const auto warnings = orphan_run.json.value("warnings", nlohmann::json::array());
  ASSERT_EQ(warnings.size(), 1u) << orphan_run.describe();
  const std::string warning = warnings[0].get<std::string>();
  EXPECT_NE(warning.find("full, independent copy"), std::string::npos) << warning;
  EXPECT_NE(warning.find(lone + "@l1"), std::string::npos) << warning;
  EXPECT_EQ(orphan_run.json["hops"][0].value("from", "x"), "") << "a full send";
  EXPECT_EQ(origin_of(target_of(orphan)), "-");
  EXPECT_FALSE(rig().zfs({"list", target_of(lone)}).ok()) << "the origin was not sent along";
  expect_same_snapshots(orphan, target_of(orphan));
  expect_same_files(orphan, target_of(orphan));
  expect_no_range_sends();
}

// 4. -r: a dataset and its three children, one of them a clone of a sibling's snapshot.
// The clone's name sorts before its origin's dataset, so listing order alone would send
// it first: the job has to order origins before clones itself.
TEST_F(ReplicateTest, RecursiveWithACloneAmongTheChildren) {
  start_nodes();
  const std::string tree = src_ + "/tree";
  create_dataset(tree);
  write_file(tree, "top", "top\n");
  snapshot(tree, "t1");
  for (const std::string child : {"beta", "gamma"}) {
    const std::string ds = tree + "/" + child;
    create_dataset(ds);
    write_random_file(ds, "data", 64 * 1024, static_cast<uint32_t>(child[0]));
    snapshot(ds, child + "1");
    write_file(ds, "more", "more\n");
    snapshot(ds, child + "2");
  }
  const std::string alpha = tree + "/alpha";
  zfs({"clone", tree + "/gamma@gamma1", alpha});
  write_file(alpha, "own", "alpha's own\n");
  snapshot(alpha, "alpha1");
  snapshot(tree, "t2");

  const CtlResult r = replicate(tree, {"-r"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(r.json.value("warnings", nlohmann::json::array()).empty()) << r.describe();
  for (const std::string& ds :
       std::vector<std::string>{tree, tree + "/beta", tree + "/gamma", alpha}) {
    expect_same_snapshots(ds, target_of(ds));
    expect_same_files(ds, target_of(ds));
  }
  EXPECT_EQ(origin_of(target_of(alpha)), target_of(tree + "/gamma") + "@gamma1");
  EXPECT_EQ(origin_of(target_of(tree + "/beta")), "-");
  EXPECT_EQ(origin_of(target_of(tree + "/gamma")), "-");
  expect_no_range_sends();
}

// 5. The source changes under a running job: a snapshot destroyed before its hop is
// skipped, snapshots created meanwhile are sent before the job ends. Large hops keep the
// job running long enough to change the source.
TEST_F(ReplicateTest, SourceChangesWhileTheJobRuns) {
  constexpr int kSnapshots = 8;
  constexpr size_t kHopBytes = 24u << 20;
  start_nodes(640ull << 20);
  const std::string src = src_ + "/busy";
  create_dataset(src);
  for (int i = 1; i <= kSnapshots; ++i) {
    write_random_file(src, "f" + std::to_string(i), kHopBytes, static_cast<uint32_t>(100 + i));
    snapshot(src, "s" + std::to_string(i));
  }
  const std::string victim = "s6";

  auto ctl = cluster().ctl_async({"replicate", "src1:" + src, "dst1"});
  ASSERT_NE(ctl, nullptr);

  // Wait for the first hop to start, then change the source at once.
  uint64_t job = 0;
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < until) {
    if (job == 0) {
      const CtlResult jobs = cluster().ctl({"jobs"});
      if (jobs.json.is_array() && !jobs.json.empty()) job = jobs.json[0].value("id", 0ull);
    }
    if (job != 0) {
      const CtlResult j = cluster().ctl({"job", std::to_string(job)});
      if (!hop_targets(j.json).empty() || is_final(j.json.value("state", ""))) break;
    }
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_NE(job, 0u) << "the job never showed up in zpsctl jobs";
  const auto t_change = std::chrono::steady_clock::now();
  zfs({"destroy", src + "@" + victim});
  write_random_file(src, "n1", 1 << 20, 7);
  snapshot(src, "n1");
  write_file(src, "n2", "newest\n");
  snapshot(src, "n2");

  // The test means something only if the job had not yet delivered its last planned
  // snapshot (after every hop the sender lists the source again) nor started the
  // victim's hop.
  const CtlResult during = cluster().ctl({"job", std::to_string(job)});
  ASSERT_TRUE(during.json.is_object()) << during.describe();
  for (const auto& h : during.json["hops"]) {
    const std::string to = h.value("to", "");
    ASSERT_FALSE(to == "s" + std::to_string(kSnapshots) && h.value("state", "") == "succeeded")
        << "the job delivered @s" << kSnapshots << " before the source changed; make the hops "
        << "larger\n" << during.describe();
    ASSERT_NE(to, victim) << during.describe();
  }
  std::cout << "source changed at hop " << during.json["hops"].size() << " of job " << job << ", in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t_change).count()
            << " ms\n";

  const CtlResult r = Cluster::finish(*ctl);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto hops = hop_targets(r.json);
  EXPECT_EQ(std::count(hops.begin(), hops.end(), victim), 0) << "destroyed @" << victim << " was sent";
  ASSERT_GE(hops.size(), 2u);
  EXPECT_EQ(hops[hops.size() - 2], "n1") << r.describe();
  EXPECT_EQ(hops.back(), "n2") << r.describe();

  const std::string dst = target_of(src);
  std::vector<std::string> arrived;
  for (const auto& s : snapshots(dst)) arrived.push_back(s.name);
  EXPECT_EQ(arrived, (std::vector<std::string>{"s1", "s2", "s3", "s4", "s5", "s7", "s8", "n1", "n2"}));
  expect_same_snapshots(src, dst);
  expect_same_files(src, dst);
  expect_no_range_sends();
}

// The race inside test 5's story: the snapshot is destroyed after the sender planned
// its hop (and the receiver started zfs recv for it) but before zfs send ran. The
// sender's zfs is a wrapper that pauses the send of that one snapshot until the test has
// destroyed it, so the race is hit every time. The hop fails, the receive is aborted
// with nothing committed, and the job goes on from a fresh listing.
TEST_F(ReplicateTest, SnapshotDestroyedBetweenPlanAndSendIsSkipped) {
  const std::string dir = cluster().dir();
  const std::string wrapper = dir + "/zfs-pausing";
  {
    std::ofstream w(wrapper);
    w << "#!/bin/sh\n"
         "# Pauses `zfs send ...@s3` until the test removes the gate file.\n"
         "for last; do :; done\n"
         "if [ \"$1\" = send ] && [ \"${last##*@}\" = s3 ] && [ -e " << dir << "/gate ]; then\n"
         "  touch " << dir << "/paused\n"
         "  while [ -e " << dir << "/gate ]; do sleep 0.05; done\n"
         "fi\n"
         "exec zfs \"$@\"\n";
  }
  std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all);
  { std::ofstream gate(dir + "/gate"); }
  start_nodes(256ull << 20, {}, {"--zfs", wrapper});
  const std::string src = src_ + "/racy";
  create_dataset(src);
  for (int i = 1; i <= 4; ++i) {
    write_random_file(src, "f" + std::to_string(i), 64 * 1024, static_cast<uint32_t>(i));
    snapshot(src, "s" + std::to_string(i));
  }

  auto ctl = cluster().ctl_async({"replicate", "src1:" + src, "dst1"});
  ASSERT_NE(ctl, nullptr);
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (!std::filesystem::exists(dir + "/paused") && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  const bool paused = std::filesystem::exists(dir + "/paused");
  if (paused) zfs({"destroy", src + "@s3"});
  std::filesystem::remove(dir + "/gate");
  const CtlResult r = Cluster::finish(*ctl);
  ASSERT_TRUE(paused) << "the sender never tried to send @s3\n" << r.describe();

  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto warnings = r.json.value("warnings", nlohmann::json::array());
  ASSERT_EQ(warnings.size(), 1u) << r.describe();
  EXPECT_NE(warnings[0].get<std::string>().find("destroyed on the source"), std::string::npos)
      << r.describe();
  const std::string dst = target_of(src);
  std::vector<std::string> arrived;
  for (const auto& s : snapshots(dst)) arrived.push_back(s.name);
  EXPECT_EQ(arrived, (std::vector<std::string>{"s1", "s2", "s4"}));
  expect_same_snapshots(src, dst);
  expect_same_files(src, dst);
  expect_no_range_sends();
}

// How many receives ran at once while several jobs ran side by side.
struct Concurrency {
  uint32_t reported = 0;  // the receiving agent's own peak, from zpsctl agents
  int sampled = 0;        // most zfs recv children of the agent seen together in /proc
};

class ConcurrentReplicateTest : public ReplicateTest {
 protected:
  // Replicates `count` datasets (each a large first hop, then two small ones) to dst1
  // at once, each with its own zpsctl, and checks that every one arrived.
  Concurrency replicate_at_once(int count) {
    std::vector<std::string> sources;
    for (int i = 1; i <= count; ++i) {
      const std::string ds = src_ + "/d" + std::to_string(i);
      create_dataset(ds);
      write_random_file(ds, "big", 16u << 20, static_cast<uint32_t>(i));
      snapshot(ds, "a");
      write_random_file(ds, "small", 1 << 20, static_cast<uint32_t>(10 + i));
      snapshot(ds, "b");
      write_file(ds, "tiny", "tiny\n");
      snapshot(ds, "c");
      sources.push_back(ds);
    }

    const pid_t receiver = cluster().agent_pid("dst1");
    std::atomic<bool> sampling{true};
    std::atomic<int> sampled{0};
    std::thread sampler([&] {
      while (sampling.load()) {
        const int n = count_recv_children(receiver);
        if (n > sampled.load()) sampled.store(n);
        std::this_thread::sleep_for(5ms);
      }
    });
    std::vector<std::unique_ptr<Process>> runs;
    for (const auto& ds : sources) {
      runs.push_back(cluster().ctl_async({"replicate", "src1:" + ds, "dst1"}));
    }
    std::vector<CtlResult> results;
    for (auto& p : runs) {
      if (p) results.push_back(Cluster::finish(*p));
    }
    sampling.store(false);
    sampler.join();

    EXPECT_EQ(results.size(), sources.size());
    for (size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i].exit_code, 0) << sources[i] << ": " << results[i].describe();
      EXPECT_EQ(results[i].json.value("state", ""), "succeeded") << results[i].describe();
    }
    for (const auto& ds : sources) {
      expect_same_snapshots(ds, target_of(ds));
      expect_same_files(ds, target_of(ds));
    }
    expect_no_range_sends();

    Concurrency c;
    c.sampled = sampled.load();
    c.reported = reported_peak();
    return c;
  }

  // The receiver's own count reaches the broker with its next heartbeats.
  uint32_t reported_peak() {
    std::this_thread::sleep_for(std::chrono::milliseconds(3 * cluster().heartbeat_ms()));
    uint32_t peak = 0;
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (peak == 0 && std::chrono::steady_clock::now() < until) {
      const CtlResult agents = cluster().ctl({"agents"});
      if (agents.json.is_array()) {
        for (const auto& a : agents.json) {
          if (a.value("id", "") == "dst1") peak = a.value("peak_recvs", 0u);
        }
      }
      if (peak == 0) std::this_thread::sleep_for(100ms);
    }
    return peak;
  }
};

// 6. Four datasets to one receiver at once: all succeed, and the receiver really ran
// their receives side by side.
TEST_F(ConcurrentReplicateTest, FourDatasetsAtOnceToOneReceiver) {
  start_nodes(384ull << 20);
  const Concurrency c = replicate_at_once(4);
  std::cout << "MEASURE peak_concurrent_recv=" << c.reported << "\n";
  std::cout << "MEASURE sampled_concurrent_recv=" << c.sampled << "\n";
  EXPECT_GE(c.reported, 2u) << "the receiver never ran two receives at once";
  EXPECT_GE(c.sampled, 2) << "/proc never showed two zfs recv of dst1 at once";
  EXPECT_LE(c.reported, 4u);
}

// A receiver at its --max-recvs answers "busy"; the senders wait and try again, so all
// four jobs still succeed, and no more than the limit ever ran at once.
TEST_F(ConcurrentReplicateTest, FourDatasetsAtOnceToAReceiverThatTakesTwo) {
  start_nodes(384ull << 20, {"--max-recvs", "2"}, {"--retry-backoff-ms", "200"});
  const Concurrency c = replicate_at_once(4);
  std::cout << "MEASURE peak_concurrent_recv_max2=" << c.reported << "\n";
  EXPECT_EQ(c.reported, 2u);
  EXPECT_LE(c.sampled, 2);
}

}  // namespace
}  // namespace zps::test
