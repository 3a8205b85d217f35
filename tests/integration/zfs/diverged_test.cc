// Targets that do not simply lag behind the source: refused and left as they are,
// unless --force allows rolling back snapshots the target has after the common one.
#include <gtest/gtest.h>

#include "tests/support/local_replicator.h"

namespace zps::test {
namespace {

class DivergedTest : public ReplicationTest {
 protected:
  // Source @s1..@s3 replicated to the target, then the target gets a snapshot of its
  // own (@extra, with a change) and the source moves on to @s4 and @s5.
  void make_target_newer() {
    create_dataset(src());
    for (int i = 1; i <= 3; ++i) {
      write_file(src(), "f", "version " + std::to_string(i));
      snapshot(src(), "s" + std::to_string(i));
    }
    auto first = replicate(src(), dst());
    ASSERT_TRUE(first.ok()) << first.status().to_string();
    write_file(dst(), "local", "written on the target");
    snapshot(dst(), "extra");
    for (int i = 4; i <= 5; ++i) {
      write_file(src(), "f", "version " + std::to_string(i));
      snapshot(src(), "s" + std::to_string(i));
    }
    log_.clear();
  }

  std::string src() const { return src_ + "/data"; }
  std::string dst() const { return dst_ + "/data"; }
};

TEST_F(DivergedTest, TargetWithoutCommonSnapshotIsRefusedAndLeftUntouched) {
  create_dataset(src());
  write_file(src(), "f", "source");
  snapshot(src(), "s1");
  snapshot(src(), "s2");
  create_dataset(dst());  // same name, unrelated history
  write_file(dst(), "f", "target");
  snapshot(dst(), "s1");
  const std::vector<SnapshotVersion> before = snapshots(dst());

  for (bool force : {false, true}) {
    LocalReplicationOptions options;
    options.force = force;
    auto result = replicate(src(), dst(), options);
    ASSERT_FALSE(result.ok()) << "force=" << force;
    EXPECT_EQ(result.status().code(), Code::kDiverged) << result.status().to_string();
    EXPECT_NE(result.status().message().find(dst()), std::string::npos);
  }
  EXPECT_TRUE(log_.of("recv").empty());
  EXPECT_TRUE(log_.of("send").empty());
  EXPECT_TRUE(log_.of("rollback").empty());
  const std::vector<SnapshotVersion> after = snapshots(dst());
  ASSERT_EQ(after.size(), before.size());
  EXPECT_EQ(after[0].guid, before[0].guid);
  EXPECT_EQ(rig().zfs({"get", "-H", "-o", "value", "origin", dst()}).value(), "-\n");
}

TEST_F(DivergedTest, TargetWithNewerSnapshotsIsRefusedWithoutForce) {
  ASSERT_NO_FATAL_FAILURE(make_target_newer());
  const std::vector<SnapshotVersion> before = snapshots(dst());

  auto result = replicate(src(), dst());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), Code::kTargetNewer) << result.status().to_string();
  EXPECT_NE(result.status().message().find("@extra"), std::string::npos)
      << result.status().message();
  EXPECT_TRUE(log_.of("recv").empty());
  EXPECT_TRUE(log_.of("rollback").empty());
  const std::vector<SnapshotVersion> after = snapshots(dst());
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i].guid, before[i].guid);
}

TEST_F(DivergedTest, WithForceNewerSnapshotsAreRolledBackThenTheTargetIsUpdated) {
  ASSERT_NO_FATAL_FAILURE(make_target_newer());

  LocalReplicationOptions options;
  options.force = true;
  auto result = replicate(src(), dst(), options);
  ASSERT_TRUE(result.ok()) << result.status().to_string();
  ASSERT_EQ(result->hops.size(), 2u);
  EXPECT_EQ(describe(result->hops[0]), "-i @s3 @s4 (-F)");
  EXPECT_EQ(describe(result->hops[1]), "-i @s4 @s5");

  auto rollbacks = log_.of("rollback");
  ASSERT_EQ(rollbacks.size(), 1u);
  EXPECT_EQ(rollbacks[0], (std::vector<std::string>{"zfs", "rollback", "-r", dst() + "@s3"}));
  ASSERT_GE(log_.of("recv").size(), 1u);
  EXPECT_EQ(log_.of("recv")[0], (std::vector<std::string>{"zfs", "recv", "-F", dst()}));

  expect_same_snapshots(src(), dst());  // @extra is gone
  expect_same_files(src(), dst());      // and so is the file written on the target
}

TEST_F(DivergedTest, ExistingTargetWithoutSnapshotsIsOverwrittenOnlyWithForce) {
  create_dataset(src());
  write_file(src(), "f", "source");
  snapshot(src(), "s1");
  create_dataset(dst());
  write_file(dst(), "g", "target");

  auto refused = replicate(src(), dst());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kRefused) << refused.status().to_string();
  EXPECT_TRUE(log_.of("recv").empty());

  LocalReplicationOptions options;
  options.force = true;
  auto forced = replicate(src(), dst(), options);
  if (!forced.ok()) {
    // zfs-fuse: `zfs recv -F` of a full stream over a file system that has been written
    // to exits 1 with "I/O error". Mostly the snapshot arrives whole all the same; under
    // load it sometimes does not, and then a second run (what an operator does after a
    // failed job) must bring it.
    EXPECT_NE(forced.status().message().find("I/O error"), std::string::npos)
        << forced.status().to_string();
    if (snapshots(dst()).empty()) {
      auto again = replicate(src(), dst(), options);
      EXPECT_TRUE(again.ok() || again.status().message().find("I/O error") != std::string::npos)
          << again.status().to_string();
    }
  }
  EXPECT_EQ(log_.of("recv").back(), (std::vector<std::string>{"zfs", "recv", "-F", dst()}));
  expect_same_snapshots(src(), dst());
  expect_same_files(src(), dst());
}

}  // namespace
}  // namespace zps::test
