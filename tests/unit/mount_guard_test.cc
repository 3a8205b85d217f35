// MountGuard: one holder at a time across threads and processes, a bounded wait, and a
// lock handed to a child (Process's pass_fd) that lasts until the child exits.
#include "shared/mount_guard.h"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "shared/process.h"
#include "tests/support/temp_dir.h"

namespace zps {
namespace {

using namespace std::chrono_literals;

class MountGuardTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  const std::string path_ = dir_.file("mount.lock");
};

TEST_F(MountGuardTest, ASecondHolderWaitsThenGetsBusyAndGetsItOnceReleased) {
  auto first = MountGuard::acquire(path_, 1s);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_TRUE(first->held());
  EXPECT_GE(first->fd(), 10);

  auto second = MountGuard::acquire(path_, 50ms);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy);
  EXPECT_NE(second.status().message().find("mounting"), std::string::npos)
      << second.status().message();

  *first = MountGuard();  // released
  auto third = MountGuard::acquire(path_, 50ms);
  ASSERT_TRUE(third.ok()) << third.status().to_string();
  EXPECT_TRUE(third->held());
}

TEST_F(MountGuardTest, NoLockDirectoryMeansNoZfsFuseAndNothingToHold) {
  auto guard = MountGuard::acquire(dir_.file("missing/mount.lock"), 50ms);
  ASSERT_TRUE(guard.ok()) << guard.status().to_string();
  EXPECT_FALSE(guard->held());
  EXPECT_EQ(guard->fd(), -1);
}

TEST_F(MountGuardTest, AChildGivenTheLockHoldsItUntilItExits) {
  auto guard = MountGuard::acquire(path_, 1s);
  ASSERT_TRUE(guard.ok()) << guard.status().to_string();
  SpawnOptions options;
  options.pipe_stdin = true;
  options.pass_fd = guard->fd();
  // The child blocks reading its stdin, holding fd 3, until stdin closes.
  auto child = Process::spawn({"sh", "-c", "cat >/dev/null; [ -e /proc/self/fd/3 ]"}, options);
  ASSERT_TRUE(child.ok()) << child.status().to_string();
  *guard = MountGuard();  // our copy goes; the child's keeps the lock

  auto meanwhile = MountGuard::acquire(path_, 100ms);
  EXPECT_FALSE(meanwhile.ok()) << "the lock was free while the child still ran";

  (*child)->close_stdin();
  ExitStatus st = (*child)->wait();
  EXPECT_TRUE(st.ok()) << "the child had no fd 3: " << st.describe();
  auto after = MountGuard::acquire(path_, 1s);
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_TRUE(after->held());
}

}  // namespace
}  // namespace zps
