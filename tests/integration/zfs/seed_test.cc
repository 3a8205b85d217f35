// The seed's own run (seeds/000_c3908c9363ab2403.txt): zones/test with snapshots whose
// names say nothing about their order arrives in creation order, one hop at a time.
#include <gtest/gtest.h>

#include "tests/support/local_replicator.h"

namespace zps::test {
namespace {

using SeedTest = ReplicationTest;

const std::vector<std::string> kSeedSnapshots = {"now",   "now2",  "8550", "18569",
                                                 "20392", "30577", "4387"};

TEST_F(SeedTest, SeedSnapshotsArriveInCreationOrder) {
  const std::string src = src_ + "/zones/test";
  const std::string dst = dst_ + "/zones/test";
  create_dataset(src_ + "/zones");
  create_dataset(src);
  // As in the seed: @now and @now2 hold (almost) nothing, then about 1 MiB arrives.
  snapshot(src, "now");
  snapshot(src, "now2");
  write_random_file(src, "payload", 1 << 20, 8550);
  snapshot(src, "8550");
  for (size_t i = 3; i < kSeedSnapshots.size(); ++i) {
    write_random_file(src, "small-" + kSeedSnapshots[i], 15 * 1024, static_cast<uint32_t>(i));
    snapshot(src, kSeedSnapshots[i]);
  }
  ASSERT_EQ(snapshot_names(src), kSeedSnapshots);

  auto result = replicate(src, dst);
  ASSERT_TRUE(result.ok()) << result.status().to_string();

  std::vector<std::string> hops;
  for (const HopPlan& hop : result->hops) hops.push_back(describe(hop));
  EXPECT_EQ(hops, (std::vector<std::string>{"full @now", "-i @now @now2", "-i @now2 @8550",
                                            "-i @8550 @18569", "-i @18569 @20392",
                                            "-i @20392 @30577", "-i @30577 @4387"}));
  EXPECT_EQ(snapshot_names(dst), kSeedSnapshots);
  expect_same_snapshots(src, dst);
  expect_same_files(src, dst);
  EXPECT_GT(result->bytes, 1u << 20);
}

}  // namespace
}  // namespace zps::test
