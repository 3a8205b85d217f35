#include "broker/lock_table.h"

#include <gtest/gtest.h>

#include <ostream>

namespace zps::broker {
namespace {

// One conflict case: held.job holds `held`, then wanted.job asks for `wanted`.
struct ConflictCase {
  const char* name;
  Lock held;
  Lock wanted;
  bool conflict;
};

void PrintTo(const ConflictCase& c, std::ostream* os) { *os << c.name; }

Lock lock(const char* agent, const char* dataset, bool recursive, uint64_t job) {
  return Lock{agent, dataset, recursive, job, 0};
}

const ConflictCase kConflictCases[] = {
    {"SameDataset", lock("dst1", "backup/a", false, 1), lock("dst1", "backup/a", false, 2),
     true},
    {"SameDatasetBothRecursive", lock("dst1", "backup/a", true, 1),
     lock("dst1", "backup/a", true, 2), true},
    {"ParentRecursiveVsChild", lock("dst1", "backup/a", true, 1),
     lock("dst1", "backup/a/b", false, 2), true},
    {"ParentRecursiveVsGrandchild", lock("dst1", "backup", true, 1),
     lock("dst1", "backup/a/b", false, 2), true},
    {"ChildPlainVsParentRecursive", lock("dst1", "backup/a/b", false, 1),
     lock("dst1", "backup/a", true, 2), true},
    {"ParentPlainVsChildRecursive", lock("dst1", "backup/a", false, 1),
     lock("dst1", "backup/a/b", true, 2), true},
    {"ChildRecursiveVsParentPlain", lock("dst1", "backup/a/b", true, 1),
     lock("dst1", "backup/a", false, 2), true},
    {"ParentPlainVsChildPlain", lock("dst1", "backup/a", false, 1),
     lock("dst1", "backup/a/b", false, 2), false},
    {"SiblingsRecursive", lock("dst1", "backup/a", true, 1), lock("dst1", "backup/b", true, 2),
     false},
    {"PrefixButNotAncestor", lock("dst1", "a/b", true, 1), lock("dst1", "a/bc", true, 2),
     false},
    {"PrefixButNotAncestorReversed", lock("dst1", "a/bc", true, 1), lock("dst1", "a/b", true, 2),
     false},
    {"DifferentAgents", lock("dst1", "backup/a", true, 1), lock("dst2", "backup/a", true, 2),
     false},
    {"SameJobSameDataset", lock("dst1", "backup/a", true, 1), lock("dst1", "backup/a", true, 1),
     false},
    {"SameJobChild", lock("dst1", "backup/a", true, 1), lock("dst1", "backup/a/b", false, 1),
     false},
};

class LockConflictTest : public testing::TestWithParam<ConflictCase> {};

TEST_P(LockConflictTest, AcquireAfterHeld) {
  const ConflictCase& c = GetParam();
  LockTable table;
  ASSERT_TRUE(table.acquire(c.held.agent, c.held.dataset, c.held.recursive, c.held.job).ok());
  auto got = table.acquire(c.wanted.agent, c.wanted.dataset, c.wanted.recursive, c.wanted.job);
  if (c.conflict) {
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), Code::kLockHeld);
    EXPECT_EQ(table.list().size(), 1u);
  } else {
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(table.list().size(), 2u);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, LockConflictTest, testing::ValuesIn(kConflictCases),
                         [](const testing::TestParamInfo<ConflictCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(LockTableTest, ConflictMessageNamesTheHoldingJobAndWhatToDo) {
  LockTable table;
  ASSERT_TRUE(table.acquire("dst1", "backup/zones", true, 12).ok());
  auto got = table.acquire("dst1", "backup/zones/test", false, 13);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().message(),
            "target dst1:backup/zones/test is locked by job 12 (which holds "
            "dst1:backup/zones recursively); wait for job 12 to end, or cancel it with: "
            "zpsctl cancel 12");
}

TEST(LockTableTest, AcquireReturnsTheLockWithItsFence) {
  LockTable table;
  auto got = table.acquire("dst1", "backup/a", true, 7);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->agent, "dst1");
  EXPECT_EQ(got->dataset, "backup/a");
  EXPECT_TRUE(got->recursive);
  EXPECT_EQ(got->job, 7u);
  EXPECT_EQ(got->fence, 1u);
  EXPECT_EQ(table.next_fence(), 2u);
}

TEST(LockTableTest, FencesStrictlyIncrease) {
  LockTable table;
  uint64_t last = 0;
  for (uint64_t job = 1; job <= 5; ++job) {
    auto got = table.acquire("dst1", "backup/" + std::to_string(job), false, job);
    ASSERT_TRUE(got.ok());
    EXPECT_GT(got->fence, last);
    last = got->fence;
    table.release_job(job);
  }
}

TEST(LockTableTest, FencesKeepIncreasingAfterRestore) {
  LockTable before;
  ASSERT_TRUE(before.acquire("dst1", "backup/a", false, 1).ok());
  auto held = before.acquire("dst1", "backup/b", false, 2);
  ASSERT_TRUE(held.ok());

  LockTable after;
  after.restore(before.list(), before.next_fence());
  EXPECT_EQ(after.list().size(), 2u);
  auto next = after.acquire("dst1", "backup/c", false, 3);
  ASSERT_TRUE(next.ok());
  EXPECT_GT(next->fence, held->fence);
}

TEST(LockTableTest, RestoreNeverReusesAFenceOfARestoredLock) {
  // The counter is persisted separately from the locks; a stale counter must not win.
  LockTable table;
  table.restore({Lock{"dst1", "backup/a", false, 1, 41}}, 5);
  EXPECT_EQ(table.next_fence(), 42u);
  auto next = table.acquire("dst1", "backup/b", false, 2);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->fence, 42u);
}

TEST(LockTableTest, RestoredLocksStillConflict) {
  LockTable table;
  table.restore({Lock{"dst1", "backup/a", true, 1, 3}}, 4);
  auto got = table.acquire("dst1", "backup/a/b", false, 2);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kLockHeld);
}

TEST(LockTableTest, ReleaseFreesOnlyThatJobsLocks) {
  LockTable table;
  ASSERT_TRUE(table.acquire("dst1", "backup/a", true, 1).ok());
  ASSERT_TRUE(table.acquire("dst2", "backup/x", false, 1).ok());
  ASSERT_TRUE(table.acquire("dst1", "backup/b", false, 2).ok());

  auto released = table.release_job(1);
  ASSERT_EQ(released.size(), 2u);
  EXPECT_EQ(released[0].dataset, "backup/a");
  EXPECT_EQ(released[1].dataset, "backup/x");
  EXPECT_TRUE(table.locks_of(1).empty());
  EXPECT_EQ(table.locks_of(2).size(), 1u);
  EXPECT_TRUE(table.acquire("dst1", "backup/a/c", false, 3).ok());
  EXPECT_TRUE(table.release_job(99).empty());
}

TEST(LockTableTest, CoversSameDatasetAndRecursiveDescendants) {
  LockTable table;
  ASSERT_TRUE(table.acquire("dst1", "backup/r", true, 1).ok());
  ASSERT_TRUE(table.acquire("dst1", "backup/p", false, 1).ok());

  EXPECT_TRUE(table.covers(1, "dst1", "backup/r"));
  EXPECT_TRUE(table.covers(1, "dst1", "backup/r/x/y"));
  EXPECT_TRUE(table.covers(1, "dst1", "backup/p"));
  EXPECT_FALSE(table.covers(1, "dst1", "backup/p/x"));   // plain lock: not its children
  EXPECT_FALSE(table.covers(1, "dst1", "backup/rx"));    // a prefix, not a child
  EXPECT_FALSE(table.covers(1, "dst1", "backup"));       // the parent is not covered
  EXPECT_FALSE(table.covers(1, "dst2", "backup/r"));     // another agent
  EXPECT_FALSE(table.covers(2, "dst1", "backup/r"));     // another job
}

TEST(LockTableTest, ToInfoCopiesEveryField) {
  auto info = LockTable::to_info(Lock{"dst1", "backup/a", true, 9, 17});
  EXPECT_EQ(info.agent, "dst1");
  EXPECT_EQ(info.dataset, "backup/a");
  EXPECT_TRUE(info.recursive);
  EXPECT_EQ(info.job, 9u);
  EXPECT_EQ(info.fence, 17u);
}

}  // namespace
}  // namespace zps::broker
