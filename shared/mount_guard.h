// A host-wide lock held while a zfs command that may mount a dataset runs on zfs-fuse.
//
// zfs-fuse hands every new mount to its FUSE listener through one pipe, in two writes (a
// header, then the mountpoint). Two mounts at once (two `zpool create`, `zfs create` or
// receives of new datasets) can interleave those writes; the listener then reads a
// garbage length and blocks in read(2) for good, holding the lock every FUSE request
// needs, and every dataset of that daemon hangs ("zfs create ... timed out",
// `umount` stuck in fuse_get_req). Seen here under parallel tests, and the cause of
// the wedged daemons of earlier runs. OpenZFS has no such race; its zfs has `recv -u`,
// which is how the adapter tells the two apart.
//
// The lock is flock(2) on a file beside zfs-fuse's own lock file, so every process
// that mounts through the same daemon (agents, the test rig) takes the same one.
//
// Thread-safety: a MountGuard is one holder; acquire() may run on many threads at once
// (each acquisition opens the file anew, so threads exclude each other too).
#pragma once

#include <chrono>
#include <string>

#include "shared/status.h"

namespace zps {

// zfs-fuse keeps its own lock in /var/lock/zfs; ours goes beside it.
inline constexpr char kMountLockPath[] = "/var/lock/zfs/zpsend-mount.lock";

class MountGuard {
 public:
  MountGuard() = default;  // holds nothing
  ~MountGuard();
  MountGuard(MountGuard&& other) noexcept;
  MountGuard& operator=(MountGuard&& other) noexcept;
  MountGuard(const MountGuard&) = delete;
  MountGuard& operator=(const MountGuard&) = delete;

  // Waits up to `wait` for the lock at `path`. When the file cannot be opened (its
  // directory is missing: no zfs-fuse here) the guard holds nothing and that is not an
  // error. kBusy when another holder kept it for all of `wait`.
  static Result<MountGuard> acquire(const std::string& path, std::chrono::milliseconds wait);

  bool held() const { return fd_ >= 0; }
  // The locked descriptor (close-on-exec, never 0-2), or -1. A child that inherits it
  // keeps the lock until it exits, even after this guard lets go.
  int fd() const { return fd_; }

 private:
  explicit MountGuard(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace zps
