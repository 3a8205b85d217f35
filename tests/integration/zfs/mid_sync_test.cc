// The source changes while a sync runs: because every hop is one -i pair planned from
// a fresh listing, destroyed snapshots are skipped and new ones are picked up.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "tests/support/local_replicator.h"

namespace zps::test {
namespace {

using MidSyncTest = ReplicationTest;

std::string snap(int i) { return "s" + std::to_string(i); }

TEST_F(MidSyncTest, SnapshotsDestroyedOnTheSourceMidSyncAreSkipped) {
  const std::string src = src_ + "/data";
  const std::string dst = dst_ + "/data";
  create_dataset(src);
  std::map<std::string, uint64_t> guids;
  for (int i = 1; i <= 8; ++i) {
    write_random_file(src, "f" + std::to_string(i), 8192, i);
    snapshot(src, snap(i));
    guids[snap(i)] = guid_of(src + "@" + snap(i));
  }

  LocalReplicationOptions options;
  options.after_hop = [&](const HopPlan&, size_t index) {
    if (index != 1) return;  // @s1 and @s2 have arrived
    zfs({"destroy", src + "@s5"});  // not sent yet: must be skipped
    zfs({"destroy", src + "@s1"});  // already sent: what -I would have blocked
  };
  auto result = replicate(src, dst, options);
  ASSERT_TRUE(result.ok()) << result.status().to_string();

  std::vector<std::string> hops;
  for (const HopPlan& hop : result->hops) hops.push_back(describe(hop));
  EXPECT_EQ(hops, (std::vector<std::string>{"full @s1", "-i @s1 @s2", "-i @s2 @s3",
                                            "-i @s3 @s4", "-i @s4 @s6", "-i @s6 @s7",
                                            "-i @s7 @s8"}));
  // The target keeps @s1 (nothing tells it to drop it) and never got @s5.
  EXPECT_EQ(snapshot_names(dst),
            (std::vector<std::string>{"s1", "s2", "s3", "s4", "s6", "s7", "s8"}));
  for (const SnapshotVersion& s : snapshots(dst)) {
    EXPECT_EQ(s.guid, guids[s.name]) << "@" << s.name;
  }
  for (const auto& argv : log_.all()) {
    for (const std::string& arg : argv) {
      EXPECT_EQ(arg.find("@s5"), std::string::npos) << format_argv(argv);
    }
  }
  expect_same_files(src, dst);
}

TEST_F(MidSyncTest, SnapshotsCreatedMidSyncArriveInTheSameRun) {
  const std::string src = src_ + "/data";
  const std::string dst = dst_ + "/data";
  create_dataset(src);
  for (int i = 1; i <= 3; ++i) {
    write_file(src, "f", "version " + std::to_string(i));
    snapshot(src, snap(i));
  }
  LocalReplicationOptions options;
  options.after_hop = [&](const HopPlan&, size_t index) {
    if (index != 1) return;
    write_file(src, "f", "version 4");
    snapshot(src, snap(4));
  };
  auto result = replicate(src, dst, options);
  ASSERT_TRUE(result.ok()) << result.status().to_string();
  EXPECT_EQ(result->hops.size(), 4u);
  expect_same_snapshots(src, dst);
  expect_same_files(src, dst);
}

}  // namespace
}  // namespace zps::test
