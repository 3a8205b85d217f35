#include "shared/secure_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "shared/names.h"

namespace zps {
namespace {

// Closes the descriptor on every return path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

Result<std::string> read_protected_file(const std::string& path, const ProtectedFileRules& rules) {
  const std::string label = std::string(rules.what) + " " + quote_name(path);
  // O_NONBLOCK: opening a FIFO someone put in the key's place must not hang startup.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT) return Status(Code::kNotFound, label + " does not exist");
    return Status(Code::kIoError, "cannot open " + label + ": " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Status(Code::kIoError, "cannot stat " + label + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Status(Code::kRefused, label + " is not a regular file");
  if ((st.st_mode & rules.forbidden_mode) != 0) {
    return Status(Code::kRefused, label + " has mode " + octal_mode(st.st_mode) +
                                      ", which lets other users at it; run: " +
                                      std::string(rules.fix) + " " + path);
  }
  if (static_cast<uint64_t>(st.st_size) > rules.max_bytes) {
    return Status(Code::kInvalidArgument, label + " is larger than " +
                                              std::to_string(rules.max_bytes) + " bytes");
  }
  // Read to EOF but never past the limit: the file may grow after fstat.
  std::string data;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status(Code::kIoError, "cannot read " + label + ": " + std::strerror(errno));
    if (n == 0) break;
    if (data.size() + static_cast<size_t>(n) > rules.max_bytes) {
      return Status(Code::kInvalidArgument, label + " is larger than " +
                                                std::to_string(rules.max_bytes) + " bytes");
    }
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

}  // namespace zps
