#include "tests/support/send_gate.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

namespace zps::test {

namespace fs = std::filesystem;

std::string real_zfs() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/sbin:/sbin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = dir + "/zfs";
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "/usr/sbin/zfs";
}

SendGate::SendGate(const std::string& dir)
    : script_(dir + "/zfs-gated"), gate_(dir + "/send.gate"), held_(dir + "/send.held") {
  std::ofstream out(script_);
  out << "#!/bin/bash\n"
      << "real='" << real_zfs() << "'\n"
      << "gate='" << gate_ << "'\n"
      << "held='" << held_ << "'\n"
      << "if [ \"$1\" != send ] || [ ! -e \"$gate\" ]; then exec \"$real\" \"$@\"; fi\n"
      << "set -o pipefail\n"
      << "me=$$\n"
      << "\"$real\" \"$@\" | {\n"
      << "  head -c " << kHeldBytes << " || exit 1\n"
      << "  touch \"$held\"\n"
      << "  while [ -e \"$gate\" ]; do kill -0 $me 2>/dev/null || exit 1; sleep 0.05; done\n"
      << "  exec cat\n"
      << "}\n";
  out.close();
  ::chmod(script_.c_str(), 0755);
}

SendGate::~SendGate() { open(); }

void SendGate::close() {
  std::error_code ec;
  fs::remove(held_, ec);
  std::ofstream(gate_).put('\n');
}

void SendGate::open() {
  std::error_code ec;
  fs::remove(gate_, ec);
}

bool SendGate::holding() const { return fs::exists(held_); }

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

namespace {

// A /proc file of a process that may exit while it is read: then it reads as empty.
// (std::istreambuf_iterator would throw: a read there fails with ESRCH.)
std::string read_proc_file(const fs::path& path) {
  std::string out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace

std::vector<pid_t> zfs_children(pid_t parent, const std::string& verb) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_proc_file(entry.path() / "stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 4 >= stat.size()) continue;
    std::istringstream rest(stat.substr(paren + 2));
    char state = '?';
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent || state == 'Z') continue;
    const std::string cmdline = read_proc_file(entry.path() / "cmdline");
    std::vector<std::string> argv;
    std::istringstream parts(cmdline);
    for (std::string arg; std::getline(parts, arg, '\0');) argv.push_back(arg);
    if (argv.size() >= 2 && argv[1] == verb) out.push_back(std::stoi(name));
  }
  return out;
}

size_t count_containing(const std::vector<std::string>& lines, const std::string& needle) {
  return static_cast<size_t>(std::count_if(lines.begin(), lines.end(), [&](const std::string& l) {
    return l.find(needle) != std::string::npos;
  }));
}

}  // namespace zps::test
