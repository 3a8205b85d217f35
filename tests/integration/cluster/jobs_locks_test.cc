// Jobs against each other and against an unwilling target, with real processes and
// real zfs-fuse pools: the broker's dataset locks (plain and recursive), a diverged
// target and one with newer snapshots (refused, then rolled back with --force), and a
// cancel in the middle of a hop.
//
// To hold a job in the middle of a hop for as long as a test needs, the sending agent
// runs a `zfs` wrapper (SendGate, tests/support/send_gate.h; the fixture is FaultTest) that lets the first MiB of
// every `zfs send` through and then waits while a gate file exists: zfs recv is running
// on the receiver with part of the stream, exactly the state a lock conflict or a
// cancel must handle.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fault_cluster.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class JobsFixture : public FaultTest {
 protected:
  // The target has the source's snapshots, compared by guid.
  void expect_same_snapshots(const std::string& source, const std::string& target) {
    const auto s = snapshots(source);
    const auto t = snapshots(target);
    ASSERT_EQ(t.size(), s.size()) << source << " vs " << target;
    for (size_t i = 0; i < s.size(); ++i) {
      EXPECT_EQ(t[i].name, s[i].name);
      EXPECT_EQ(t[i].guid, s[i].guid) << target << "@" << t[i].name;
    }
  }
};

// ---- Locks -----------------------------------------------------------------------------

class ClusterLocks : public JobsFixture {};

TEST_F(ClusterLocks, SecondJobIntoTheSameTargetIsRefusedUntilTheFirstEnds) {
  start_cluster();
  const std::string data = src_ + "/data", other = src_ + "/other";
  create_dataset(data);
  write_random_file(data, "blob", 3 << 20, 1);
  snapshot(data, "s1");
  create_dataset(other);
  write_file(other, "f", "other");
  snapshot(other, "o1");
  const std::string target = "dst1:" + root_ + "/data";

  gate_->close();
  const uint64_t first = replicate_detached({"src1:" + data, target});
  wait_hop_held();
  const std::string job = std::to_string(first);

  // The same replication again, and another source into the same target: both refused
  // by the broker, naming the job that holds the lock and how to get rid of it.
  for (const std::string& source : {data, other}) {
    CtlResult r = cluster().ctl({"replicate", "src1:" + source, target});
    EXPECT_EQ(r.exit_code, 4) << r.describe();
    EXPECT_NE(r.err.find("is locked by job " + job), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("zpsctl cancel " + job), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(root_ + "/data"), std::string::npos) << r.err;
  }
  const nlohmann::json held = locks();
  ASSERT_EQ(held.size(), 1u) << held.dump();
  EXPECT_EQ(held[0].value("agent", ""), "dst1");
  EXPECT_EQ(held[0].value("dataset", ""), root_ + "/data");
  EXPECT_EQ(held[0].value("job", 0ull), first);
  EXPECT_FALSE(held[0].value("recursive", true));
  EXPECT_GT(held[0].value("fence", 0ull), 0u);
  // Refused before any job started: the only send is the first job's.
  EXPECT_EQ(count_containing(cluster().zfs_commands("src1"), " send "), 1u);

  gate_->open();
  CtlResult ended = watch(first);
  EXPECT_EQ(ended.exit_code, 0) << ended.describe();
  EXPECT_EQ(ended.json.value("state", ""), "succeeded") << ended.out;

  // Now the refused command goes through (with a new snapshot to carry).
  write_file(data, "later", "later");
  snapshot(data, "s2");
  CtlResult again = cluster().ctl({"replicate", "src1:" + data, target});
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  expect_same_snapshots(data, root_ + "/data");
  expect_same_files(data, root_ + "/data");
  EXPECT_TRUE(locks().empty());
}

TEST_F(ClusterLocks, RecursiveJobOnAParentBlocksAJobOnItsChildAndBackAgain) {
  start_cluster();
  const std::string tree = src_ + "/tree", child = tree + "/child";
  create_dataset(tree);
  create_dataset(child);
  write_random_file(tree, "blob", 2 << 20, 2);
  write_random_file(child, "blob", 2 << 20, 3);
  zfs({"snapshot", "-r", tree + "@s1"});
  const std::string tree_target = "dst1:" + root_ + "/tree";
  const std::string child_target = "dst1:" + root_ + "/tree/child";

  // -r on the parent holds the whole subtree: a job on the child is refused.
  gate_->close();
  const uint64_t parent_job = replicate_detached({"-r", "src1:" + tree, tree_target});
  wait_hop_held();
  CtlResult r = cluster().ctl({"replicate", "src1:" + child, child_target});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_NE(r.err.find("is locked by job " + std::to_string(parent_job)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(root_ + "/tree recursively"), std::string::npos) << r.err;
  nlohmann::json held = locks();
  ASSERT_EQ(held.size(), 1u) << held.dump();
  EXPECT_EQ(held[0].value("dataset", ""), root_ + "/tree");
  EXPECT_TRUE(held[0].value("recursive", false));
  gate_->open();
  CtlResult ended = watch(parent_job);
  EXPECT_EQ(ended.exit_code, 0) << ended.describe();

  // And the other way round: a job on the child blocks -r on the parent.
  write_file(child, "more", "more");
  zfs({"snapshot", "-r", tree + "@s2"});
  gate_->close();
  const uint64_t child_job = replicate_detached({"src1:" + child, child_target});
  wait_hop_held();
  r = cluster().ctl({"replicate", "-r", "src1:" + tree, tree_target});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_NE(r.err.find("is locked by job " + std::to_string(child_job)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(with its descendants)"), std::string::npos) << r.err;
  gate_->open();
  ended = watch(child_job);
  EXPECT_EQ(ended.exit_code, 0) << ended.describe();

  r = cluster().ctl({"replicate", "-r", "src1:" + tree, tree_target});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  expect_same_snapshots(tree, root_ + "/tree");
  expect_same_snapshots(child, root_ + "/tree/child");
  expect_same_files(child, root_ + "/tree/child");
  EXPECT_TRUE(locks().empty());
}

// ---- Divergence ------------------------------------------------------------------------

class ClusterDiverged : public JobsFixture {};

TEST_F(ClusterDiverged, TargetWithNoCommonSnapshotIsRefusedEvenWithForce) {
  start_cluster();
  const std::string data = src_ + "/data", target = root_ + "/data";
  create_dataset(data);
  write_file(data, "f", "source");
  snapshot(data, "s1");
  snapshot(data, "s2");
  // Same name, different history: only the guid tells them apart.
  create_dataset(target);
  write_file(target, "f", "someone else's");
  snapshot(target, "s1");
  const uint64_t own_guid = guid_of(target + "@s1");

  for (bool force : {false, true}) {
    std::vector<std::string> argv = {"replicate", "src1:" + data, "dst1:" + target};
    if (force) argv.push_back("--force");
    CtlResult r = cluster().ctl(argv);
    EXPECT_EQ(r.exit_code, 4) << r.describe();
    EXPECT_NE(r.err.find("none in common"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(target), std::string::npos) << r.err;
    EXPECT_EQ(r.json.value("state", ""), "failed") << r.out;
    EXPECT_EQ(r.json.value("error_code", ""), "diverged") << r.out;
  }
  const auto now = snapshots(target);
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].guid, own_guid);
  EXPECT_EQ(count_containing(cluster().zfs_commands("src1"), " send "), 0u);
  EXPECT_EQ(count_containing(cluster().zfs_commands("dst1"), " recv "), 0u);
  EXPECT_TRUE(locks().empty());
}

TEST_F(ClusterDiverged, TargetWithNewerSnapshotsIsRefusedThenRolledBackWithForce) {
  start_cluster();
  const std::string data = src_ + "/data", target = root_ + "/data";
  create_dataset(data);
  write_file(data, "f", "one");
  snapshot(data, "s1");
  write_file(data, "f", "two");
  snapshot(data, "s2");
  CtlResult first = cluster().ctl({"replicate", "src1:" + data, "dst1:" + target});
  ASSERT_EQ(first.exit_code, 0) << first.describe();

  // Someone works on the backup; the source moves on.
  write_file(target, "local", "written on the target");
  snapshot(target, "extra");
  write_file(data, "f", "three");
  snapshot(data, "s3");

  CtlResult refused = cluster().ctl({"replicate", "src1:" + data, "dst1:" + target});
  EXPECT_EQ(refused.exit_code, 4) << refused.describe();
  EXPECT_NE(refused.err.find("newer than the last common one (@s2)"), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("@extra"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--force"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.json.value("error_code", ""), "target_newer") << refused.out;
  auto kept = snapshots(target);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[2].name, "extra");

  CtlResult forced = cluster().ctl({"replicate", "src1:" + data, "dst1:" + target, "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.describe();
  EXPECT_EQ(forced.json.value("state", ""), "succeeded") << forced.out;
  expect_same_snapshots(data, target);
  expect_same_files(data, target);
  EXPECT_TRUE(locks().empty());
}

// ---- Cancel ----------------------------------------------------------------------------

class ClusterCancel : public JobsFixture {};

TEST_F(ClusterCancel, CancelMidHopKillsRecvLeavesNoPartialSnapshotAndReleasesTheLock) {
  start_cluster();
  const std::string data = src_ + "/data", target = root_ + "/data";
  create_dataset(data);
  write_file(data, "f", "first");
  snapshot(data, "s1");
  CtlResult first = cluster().ctl({"replicate", "src1:" + data, "dst1:" + target});
  ASSERT_EQ(first.exit_code, 0) << first.describe();

  write_random_file(data, "blob", 6 << 20, 4);
  snapshot(data, "s2");
  gate_->close();
  const uint64_t job = replicate_detached({"src1:" + data, "dst1:" + target});
  wait_hop_held();
  const pid_t dst = cluster().agent_pid("dst1");
  const std::vector<pid_t> recvs = zfs_children(dst, "recv");
  ASSERT_EQ(recvs.size(), 1u);
  const nlohmann::json during = cluster().ctl({"job", std::to_string(job)}).json;
  EXPECT_EQ(during.value("state", ""), "running") << during.dump();

  CtlResult cancel = cluster().ctl({"cancel", std::to_string(job)});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.describe();
  CtlResult ended = watch(job);
  EXPECT_EQ(ended.exit_code, 1) << ended.describe();
  EXPECT_EQ(ended.json.value("state", ""), "cancelled") << ended.out;

  // zfs recv was killed, the lock released, and nothing half-received is left.
  EXPECT_TRUE(wait_until([&] { return zfs_children(dst, "recv").empty(); }, 10s))
      << "zfs recv still runs under dst1";
  EXPECT_NE(::kill(recvs[0], 0), 0) << "zfs recv " << recvs[0] << " still exists";
  EXPECT_TRUE(wait_until([&] { return locks().empty(); }, 10s)) << locks().dump();
  const auto left = snapshots(target);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].name, "s1");
  EXPECT_EQ(left[0].guid, guid_of(data + "@s1"));
  const std::string all = zfs({"list", "-H", "-o", "name", "-t", "all", "-r", root_});
  EXPECT_EQ(all.find('%'), std::string::npos) << "a partial receive is left:\n" << all;

  // A new job picks up from @s1.
  gate_->open();
  CtlResult again = cluster().ctl({"replicate", "src1:" + data, "dst1:" + target});
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  ASSERT_TRUE(again.json.contains("hops")) << again.out;
  ASSERT_EQ(again.json["hops"].size(), 1u) << again.out;
  EXPECT_EQ(again.json["hops"][0].value("from", ""), "s1");
  EXPECT_EQ(again.json["hops"][0].value("to", ""), "s2");
  expect_same_snapshots(data, target);
  expect_same_files(data, target);
}

}  // namespace
}  // namespace zps::test
