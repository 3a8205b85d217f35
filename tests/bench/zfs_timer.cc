// `zfs` as the agents see it while tests/bench/run measures where a hop's time goes
// (agents started with --zfs PATH-OF-THIS): runs the real zfs with the same argv,
// stdin, stdout and stderr, waits for it, and appends one line to $ZPS_TIMER_LOG:
//
//   <start> <end> <exit> <argv...>      (start and end in unix seconds, microseconds)
//
// Its own cost is one fork and exec (about a millisecond here), paid outside the
// measured interval. The real zfs is $ZPS_TIMER_ZFS, default /usr/sbin/zfs.
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

double now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const char* real = std::getenv("ZPS_TIMER_ZFS");
  if (real == nullptr) real = "/usr/sbin/zfs";
  const double start = now();
  pid_t pid = fork();
  if (pid < 0) return 127;
  if (pid == 0) {
    argv[0] = const_cast<char*>(real);
    execv(real, argv);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  const double end = now();
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (const char* log = std::getenv("ZPS_TIMER_LOG")) {
    char head[96];
    std::snprintf(head, sizeof head, "%.6f %.6f %d", start, end, code);
    std::string line = head;
    for (int i = 1; i < argc; ++i) line += std::string(" ") + argv[i];
    line += "\n";
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      (void)!write(fd, line.data(), line.size());
      close(fd);
    }
  }
  return code;
}
