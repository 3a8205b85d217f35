#include "shared/mount_guard.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace zps {

MountGuard::~MountGuard() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

MountGuard::MountGuard(MountGuard&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

MountGuard& MountGuard::operator=(MountGuard&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

Result<MountGuard> MountGuard::acquire(const std::string& path, std::chrono::milliseconds wait) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == ENOENT) return MountGuard();
    return Status(Code::kIoError, "cannot open the mount lock " + path + ": " + std::strerror(errno));
  }
  // Above the standard descriptors, so a child can be given it as fd 3 by dup2 (which
  // clears close-on-exec only when the two numbers differ).
  if (fd < 10) {
    int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
    ::close(fd);
    if (moved < 0) return Status(Code::kIoError, std::string("fcntl: ") + std::strerror(errno));
    fd = moved;
  }
  MountGuard guard(fd);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  auto pause = std::chrono::milliseconds(2);
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      return Status(Code::kIoError, "cannot lock " + path + ": " + std::strerror(errno));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status(Code::kBusy, "another zfs command on this host is still mounting a dataset "
                                 "(zfs-fuse mounts one at a time; lock " + path + ")");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  return guard;
}

}  // namespace zps
