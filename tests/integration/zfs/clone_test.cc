// A clone arrives as a clone of the target's copy of its origin, when that copy exists.
#include <gtest/gtest.h>

#include "tests/support/local_replicator.h"

namespace zps::test {
namespace {

using CloneTest = ReplicationTest;

TEST_F(CloneTest, CloneArrivesAsCloneOfTheTargetsOrigin) {
  const std::string test = src_ + "/test";
  const std::string cl = src_ + "/cl";
  create_dataset(test);
  write_file(test, "base", "base data");
  snapshot(test, "now");
  write_random_file(test, "more", 64 * 1024, 1);
  snapshot(test, "now2");
  zfs({"clone", test + "@now2", cl});
  write_file(cl, "clone-only", "written in the clone");
  snapshot(cl, "c1");
  write_file(cl, "clone-only", "changed in the clone");
  snapshot(cl, "c2");

  ASSERT_TRUE(replicate(test, dst_ + "/x/test").ok());
  log_.clear();
  auto result = replicate(cl, dst_ + "/x/cl");
  ASSERT_TRUE(result.ok()) << result.status().to_string();

  ASSERT_EQ(result->hops.size(), 2u);
  EXPECT_EQ(result->hops[0].kind, HopKind::kCloneIncremental);
  EXPECT_EQ(result->hops[0].from, test + "@now2");
  EXPECT_TRUE(result->warnings.empty());
  auto sends = log_.of("send");
  ASSERT_EQ(sends.size(), 2u);
  EXPECT_EQ(sends[0], (std::vector<std::string>{"zfs", "send", "-i", test + "@now2", cl + "@c1"}));
  EXPECT_EQ(sends[1], (std::vector<std::string>{"zfs", "send", "-i", cl + "@c1", cl + "@c2"}));

  EXPECT_EQ(zfs({"get", "-H", "-o", "value", "origin", dst_ + "/x/cl"}),
            dst_ + "/x/test@now2\n");
  expect_same_snapshots(cl, dst_ + "/x/cl");
  expect_same_files(cl, dst_ + "/x/cl");
  expect_same_files(test, dst_ + "/x/test");
}

TEST_F(CloneTest, CloneWithoutItsOriginOnTheTargetArrivesAsAFullCopy) {
  const std::string test = src_ + "/test";
  const std::string cl = src_ + "/cl";
  create_dataset(test);
  write_file(test, "base", "base data");
  snapshot(test, "now");
  zfs({"clone", test + "@now", cl});
  write_file(cl, "clone-only", "x");
  snapshot(cl, "c1");

  auto result = replicate(cl, dst_ + "/cl");
  ASSERT_TRUE(result.ok()) << result.status().to_string();
  ASSERT_EQ(result->hops.size(), 1u);
  EXPECT_EQ(result->hops[0].kind, HopKind::kFull);
  ASSERT_EQ(result->warnings.size(), 1u);
  EXPECT_NE(result->warnings[0].find("full, independent copy"), std::string::npos)
      << result->warnings[0];
  EXPECT_EQ(zfs({"get", "-H", "-o", "value", "origin", dst_ + "/cl"}), "-\n");
  expect_same_snapshots(cl, dst_ + "/cl");
  expect_same_files(cl, dst_ + "/cl");
}

}  // namespace
}  // namespace zps::test
