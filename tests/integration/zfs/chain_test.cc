// A long chain arrives one `zfs send -i` pair at a time, never as a range.
#include <gtest/gtest.h>

#include "tests/support/local_replicator.h"

namespace zps::test {
namespace {

using ChainTest = ReplicationTest;

constexpr int kSnapshots = 25;

std::string snap(int i) { return "s" + std::to_string(i); }

TEST_F(ChainTest, TwentyFiveSnapshotsArriveAsFullThenTwentyFourIncrements) {
  const std::string src = src_ + "/data";
  const std::string dst = dst_ + "/backup/data";  // its parent is created, unmounted
  create_dataset(src);
  for (int i = 1; i <= kSnapshots; ++i) {
    write_random_file(src, "f" + std::to_string(i), 4096 + 997 * i, i);
    write_file(src, "log", "entry " + std::to_string(i) + "\n");  // changes every time
    snapshot(src, snap(i));
  }

  auto result = replicate(src, dst);
  ASSERT_TRUE(result.ok()) << result.status().to_string();

  ASSERT_EQ(result->hops.size(), static_cast<size_t>(kSnapshots));
  EXPECT_EQ(result->hops[0].kind, HopKind::kFull);
  EXPECT_EQ(result->hops[0].to, snap(1));
  for (int i = 1; i < kSnapshots; ++i) {
    EXPECT_EQ(result->hops[i].kind, HopKind::kIncremental) << "hop " << i;
    EXPECT_EQ(result->hops[i].from, snap(i)) << "hop " << i;
    EXPECT_EQ(result->hops[i].to, snap(i + 1)) << "hop " << i;
  }

  // What zfs was asked to do: one full send, then one pair per hop.
  auto sends = log_.of("send");
  ASSERT_EQ(sends.size(), static_cast<size_t>(kSnapshots));
  EXPECT_EQ(sends[0], (std::vector<std::string>{"zfs", "send", src + "@s1"}));
  for (int i = 1; i < kSnapshots; ++i) {
    EXPECT_EQ(sends[i], (std::vector<std::string>{"zfs", "send", "-i", src + "@" + snap(i),
                                                   src + "@" + snap(i + 1)}));
  }

  // Every argv the adapter formed was recorded; none asks for a range.
  EXPECT_GT(log_.all().size(), static_cast<size_t>(4 * kSnapshots));
  EXPECT_TRUE(log_.containing("-I").empty());
  EXPECT_EQ(log_.of("recv").size(), static_cast<size_t>(kSnapshots));

  expect_same_snapshots(src, dst);
  expect_same_files(src, dst);

  // A snapshot in the middle holds what the source's did (compared through clones,
  // as zfs-fuse has no .zfs directory).
  zfs({"clone", src + "@s12", src_ + "/check"});
  zfs({"clone", dst + "@s12", dst_ + "/check"});
  expect_same_files(src_ + "/check", dst_ + "/check");

  EXPECT_EQ(zfs({"get", "-H", "-o", "value", "canmount", dst_ + "/backup"}), "off\n");
}

TEST_F(ChainTest, ASecondRunFindsNothingToDoAndANewSnapshotIsPickedUp) {
  const std::string src = src_ + "/data";
  const std::string dst = dst_ + "/data";
  create_dataset(src);
  write_file(src, "a", "one");
  snapshot(src, "s1");
  write_file(src, "a", "two");
  snapshot(src, "s2");
  ASSERT_TRUE(replicate(src, dst).ok());

  log_.clear();
  auto again = replicate(src, dst);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_TRUE(again->hops.empty());
  EXPECT_TRUE(log_.of("send").empty());
  EXPECT_TRUE(log_.of("recv").empty());

  write_file(src, "a", "three");
  snapshot(src, "s3");
  auto more = replicate(src, dst);
  ASSERT_TRUE(more.ok()) << more.status().to_string();
  ASSERT_EQ(more->hops.size(), 1u);
  EXPECT_EQ(describe(more->hops[0]), "-i @s2 @s3");
  expect_same_snapshots(src, dst);
  expect_same_files(src, dst);
}

}  // namespace
}  // namespace zps::test
