// The real-ZFS test rig: throwaway zfs-fuse pools on sparse files.
//
// ZfsRig is a plain class (no GoogleTest inside) so any test program, including the
// cluster tests that start agents in other processes, can create and destroy pools the
// same way. ZfsTest is the thin GoogleTest fixture on top of it.
//
// Pools are named "zpst-<pid>-<n>-<tag>" and live on sparse files in a temporary
// directory "zpst-<pid>-XXXXXX" (under $TMPDIR or /tmp), mounted below it, with
// cachefile=none so a restarted daemon does not bring them back. The pid in the name
// is what lets a later run clean up after a crashed one without touching anybody
// else's pools: only pools with this prefix whose creating process is gone are
// destroyed, never a user's pools and never a concurrent run's.
//
// The rig runs zfs/zpool directly (set-up and checks); the code under test uses the
// zfs adapter (shared/zfs.h).
//
// Thread-safety: a ZfsRig is used by one thread.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "shared/plan.h"
#include "shared/status.h"

namespace zps::test {

inline constexpr std::string_view kRigPrefix = "zpst";

struct ZfsAvailability {
  bool available = false;
  std::string reason;  // when not available: why, and how to get ZFS
};

// Whether zfs/zpool exist and a zfs-fuse daemon answers; starts the daemon (and leaves
// it running for the next tests) when it is installed but not running and we are root.
// Checked once per process.
const ZfsAvailability& zfs_availability();

// True when the environment says CI=true: then a test that needs ZFS fails instead of
// skipping.
bool running_in_ci();

// Difference between two directory trees (names, types, file contents), "" when they
// are the same. Does not descend into other file systems (child datasets' mounts).
std::string tree_difference(const std::string& dir_a, const std::string& dir_b);

class ZfsRig {
 public:
  ZfsRig();  // makes the temporary directory; pools come from create_pool()
  ~ZfsRig();  // destroys its pools (best effort) and removes the directory
  ZfsRig(const ZfsRig&) = delete;
  ZfsRig& operator=(const ZfsRig&) = delete;

  // Destroys pools of the rig's prefix whose creating process no longer runs, and
  // removes their directories. Returns what it did, one line per pool or directory.
  static std::vector<std::string> cleanup_leftovers();

  // A new pool on a sparse file of `size` bytes; `tag` (letters and digits) makes the
  // name recognisable. Returns the pool's name.
  Result<std::string> create_pool(std::string_view tag, uint64_t size = 256ull << 20);
  // `zpool destroy -f`, retried while zfs-fuse says the pool is busy.
  Status destroy_pool(const std::string& pool);
  // Destroys every pool this rig created; the first error, after trying them all.
  Status destroy_all();

  const std::string& dir() const { return dir_; }
  const std::vector<std::string>& pools() const { return pools_; }

  // Runs zfs / zpool; stdout on success, else an error carrying the stderr.
  Result<std::string> zfs(const std::vector<std::string>& args);
  Result<std::string> zpool(const std::vector<std::string>& args);

  Status create_dataset(const std::string& dataset);
  Status snapshot(const std::string& dataset, const std::string& name);
  Result<std::string> mountpoint(const std::string& dataset);
  Status write_file(const std::string& dataset, const std::string& relative_path,
                    std::string_view contents);
  // `size` pseudo-random bytes, the same for the same seed.
  Status write_random_file(const std::string& dataset, const std::string& relative_path,
                           size_t size, uint32_t seed);
  Result<uint64_t> guid_of(const std::string& name);
  // The dataset's own snapshots in creation order with guid and createtxg, read with
  // `zfs list -s createtxg` and `zfs get -Hp` (not through the adapter's parser).
  Result<std::vector<SnapshotVersion>> snapshots(const std::string& dataset);

 private:
  std::string dir_;
  std::vector<std::string> pools_;
};

// Thrown by ZfsTest's helpers when a set-up step fails: the test stops there with the
// message, and TearDown still destroys the pools.
class RigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Fixture for tests against real ZFS: skips (or fails with CI=true) when ZFS is not
// available, cleans up a crashed run's pools once per process, destroys this test's
// pools afterwards even when the test fails.
class ZfsTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  ZfsRig& rig() { return *rig_; }

  // The rig's operations, throwing RigError on failure.
  std::string create_pool(std::string_view tag);
  std::string zfs(const std::vector<std::string>& args);
  void create_dataset(const std::string& dataset);
  void snapshot(const std::string& dataset, const std::string& name);
  std::string mountpoint(const std::string& dataset);
  void write_file(const std::string& dataset, const std::string& path, std::string_view data);
  void write_random_file(const std::string& dataset, const std::string& path, size_t size,
                         uint32_t seed);
  uint64_t guid_of(const std::string& name);
  std::vector<SnapshotVersion> snapshots(const std::string& dataset);
  // Fails the test (non-fatally) when the two mounted datasets' files differ.
  void expect_same_files(const std::string& dataset_a, const std::string& dataset_b);

 private:
  std::unique_ptr<ZfsRig> rig_;
};

}  // namespace zps::test
