#include "shared/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <system_error>

extern char** environ;

namespace zps {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long stderr_text() keeps reading after the child is reaped: a grandchild that
// inherited stderr may hold the pipe open for ever, and we will not wait for it.
constexpr milliseconds kStderrGrace{200};

// Owns one descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }

  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string error_text(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof buf);  // the GNU variant: returns the text
}

Status io_error(const std::string& what, int err) {
  return Status(Code::kIoError, what + ": " + error_text(err));
}

// Milliseconds left until `deadline`, rounded up so a poll never wakes just short of
// it, and clamped to what poll() accepts.
int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, INT_MAX));
}

std::string format_duration(milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

// Moves `fd` to a number >= 3: the child's dup2 onto 0-2 must never overwrite a pipe
// end it still has to dup (possible when our own 0-2 were closed at startup).
Status move_above_stdio(UniqueFd& fd) {
  if (fd.get() > 2) return Status::Ok();
  int moved = fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return io_error("fcntl(F_DUPFD_CLOEXEC)", errno);
  fd = UniqueFd(moved);
  return Status::Ok();
}

Status make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return io_error("pipe2", errno);
  read_end = UniqueFd(fds[0]);
  write_end = UniqueFd(fds[1]);
  ZPS_RETURN_IF_ERROR(move_above_stdio(read_end));
  return move_above_stdio(write_end);
}

Status set_nonblocking(int fd) {
  if (fd < 0) return Status::Ok();
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return io_error("fcntl(O_NONBLOCK)", errno);
  }
  return Status::Ok();
}

// A pidfd lets wait_for() poll for the exit instead of sleeping in a waitpid loop.
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));  // always close-on-exec
#else
  (void)pid;
  return -1;
#endif
}

ExitStatus decode_wait_status(int wstatus) {
  ExitStatus status;
  if (WIFEXITED(wstatus)) {
    status.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    status.signal = WTERMSIG(wstatus);
  }
  return status;
}

// The child's fd `child_fd` becomes `pipe_end`, or /dev/null when it is not piped.
int add_stdio(posix_spawn_file_actions_t* actions, int child_fd, int pipe_end,
              int null_flags) {
  if (pipe_end >= 0) return posix_spawn_file_actions_adddup2(actions, pipe_end, child_fd);
  return posix_spawn_file_actions_addopen(actions, child_fd, "/dev/null", null_flags, 0);
}

// Starts the child with fds 0-2 set up and nothing else open. Returns 0 or an errno.
int start_child(const std::vector<std::string>& argv, int stdin_end, int stdout_end,
                int stderr_end, int pass_fd, pid_t* pid) {
  posix_spawn_file_actions_t actions;
  if (int rc = posix_spawn_file_actions_init(&actions); rc != 0) return rc;
  posix_spawnattr_t attr;
  if (int rc = posix_spawnattr_init(&attr); rc != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return rc;
  }

  int rc = add_stdio(&actions, 0, stdin_end, O_RDONLY);
  if (rc == 0) rc = add_stdio(&actions, 1, stdout_end, O_WRONLY);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, stderr_end, 2);
  // Whatever else is open here (a library's descriptor without O_CLOEXEC, another
  // thread's half-made pipe) must not outlive us in the child.
  if (rc == 0 && pass_fd >= 0 && pass_fd <= 3) rc = EINVAL;  // would clash with 0-3
  if (rc == 0 && pass_fd >= 0) rc = posix_spawn_file_actions_adddup2(&actions, pass_fd, 3);
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, pass_fd >= 0 ? 4 : 3);

  // The child starts with an empty signal mask and SIGPIPE at its default: our
  // programs ignore SIGPIPE and may block signals for their own use, and a child like
  // `zfs send` must die normally when its reader goes away.
  sigset_t empty, sigpipe;
  sigemptyset(&empty);
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &empty);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &sigpipe);
  if (rc == 0) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  if (rc == 0) {
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    rc = posix_spawnp(pid, args[0], &actions, &attr, args.data(), environ);
  }
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return rc;
}

// Blocks SIGPIPE in this thread for the scope's lifetime, so writing to a child that
// stopped reading fails with EPIPE even in a program that did not ignore SIGPIPE. A
// SIGPIPE our writes raised is consumed before the old mask comes back.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&sigpipe_);
    sigaddset(&sigpipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigpipe_, &old_mask_);
    was_pending_ = is_pending();
  }
  ~SigpipeBlock() {
    if (!was_pending_ && is_pending()) {
      timespec zero{};
      while (sigtimedwait(&sigpipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  static bool is_pending() {
    sigset_t pending;
    sigemptyset(&pending);
    return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  }

  sigset_t sigpipe_;
  sigset_t old_mask_;
  bool was_pending_ = false;
};

bool needs_quotes(const std::string& arg) {
  return arg.empty() || arg.find_first_of(" \t\n'\"\\") != std::string::npos;
}

// Shell-style single quotes, so a logged command can be pasted into a shell.
std::string quote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

// The stderr pipe and the thread that drains it.
struct Process::StderrCapture {
  UniqueFd fd;    // read end of the child's stderr
  UniqueFd wake;  // eventfd: the child is reaped, finish within kStderrGrace
  size_t limit = 0;
  std::mutex mu;
  std::string text;  // guarded by mu
  std::thread thread;

  void drain();
  void keep(const char* data, size_t n);
};

void Process::StderrCapture::keep(const char* data, size_t n) {
  std::lock_guard lock(mu);
  if (text.size() >= limit) return;
  text.append(data, std::min(n, limit - text.size()));
}

// Reads until EOF, or until the grace period after the wake-up ends.
void Process::StderrCapture::drain() {
  char buf[16 * 1024];
  std::optional<Clock::time_point> deadline;
  for (;;) {
    if (deadline && Clock::now() >= *deadline) return;
    pollfd fds[2] = {{fd.get(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
    int ready = poll(fds, deadline ? 1 : 2, deadline ? remaining_ms(*deadline) : -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return;
    if (!deadline && (fds[1].revents & POLLIN)) deadline = Clock::now() + kStderrGrace;
    if (fds[0].revents == 0) continue;
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n == 0) return;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    try {
      keep(buf, static_cast<size_t>(n));
    } catch (...) {
      // Out of memory for the capture: keep draining, the child must not block.
    }
  }
}

std::string ExitStatus::describe() const {
  if (signal != 0) {
    const char* name = strsignal(signal);
    return "killed by signal " + std::to_string(signal) + " (" + (name ? name : "unknown") + ")";
  }
  if (code >= 0) return "exit status " + std::to_string(code);
  return "unknown exit status";
}

Result<std::unique_ptr<Process>> Process::spawn(const std::vector<std::string>& argv,
                                                const SpawnOptions& options) {
  if (argv.empty() || argv[0].empty()) {
    return Status(Code::kInvalidArgument, "cannot start a process: empty command");
  }
  // Allocated before the child exists, so nothing after the spawn can fail and leave
  // the child without an owner.
  std::unique_ptr<Process> p(new Process());
  p->argv_ = argv;
  p->stderr_ = std::make_unique<StderrCapture>();
  p->stderr_->limit = options.stderr_limit;

  UniqueFd in_read, in_write, out_read, out_write, err_write;
  if (options.pipe_stdin) ZPS_RETURN_IF_ERROR(make_pipe(in_read, in_write));
  if (options.pipe_stdout) ZPS_RETURN_IF_ERROR(make_pipe(out_read, out_write));
  const bool to_log = !options.log_file.empty();
  if (to_log) {
    err_write = UniqueFd(open(options.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (err_write.get() >= 0 && err_write.get() < 3) err_write = UniqueFd(fcntl(err_write.get(), F_DUPFD_CLOEXEC, 3));
    if (err_write.get() < 0) return io_error("cannot open " + options.log_file, errno);
    if (!options.pipe_stdout) out_write = UniqueFd(fcntl(err_write.get(), F_DUPFD_CLOEXEC, 3));
  } else {
    ZPS_RETURN_IF_ERROR(make_pipe(p->stderr_->fd, err_write));
    p->stderr_->wake = UniqueFd(eventfd(0, EFD_CLOEXEC));
    if (p->stderr_->wake.get() < 0) return io_error("eventfd", errno);
  }

  pid_t pid = -1;
  int rc = start_child(argv, in_read.get(), out_write.get(), err_write.get(), options.pass_fd, &pid);
  if (rc == ENOENT) {
    return Status(Code::kNotFound, "cannot run " + argv[0] + ": program not found");
  }
  if (rc != 0) return io_error("cannot run " + argv[0], rc);

  p->pid_ = pid;
  p->pidfd_ = open_pidfd(pid);
  p->stdin_fd_ = in_write.release();
  p->stdout_fd_ = out_read.release();
  // The child's ends (in_read, out_write, err_write) close on return: it has its copies,
  // and EOF on our ends depends on ours being gone.
  if (to_log) return p;
  try {
    StderrCapture* capture = p->stderr_.get();
    capture->thread = std::thread([capture] { capture->drain(); });
  } catch (const std::system_error& e) {
    return Status(Code::kIoError,
                  "cannot start the stderr reader for " + argv[0] + ": " + e.what());
  }
  return p;
}

Process::~Process() {
  close_stdin();
  close_stdout();
  if (pid_ > 0 && !reaped_) {
    kill(SIGKILL);
    reap_blocking();
  }
  join_stderr();
  if (pidfd_ >= 0) ::close(pidfd_);
}

void Process::close_stdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

void Process::close_stdout() {
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  stdout_fd_ = -1;
}

bool Process::try_reap() {
  std::lock_guard lock(kill_mu_);
  if (reaped_) return true;
  int wstatus = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &wstatus, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  // r < 0 (ECHILD) means someone else reaped it (SIGCHLD ignored, a stray
  // waitpid(-1)): it is gone, but how it ended is lost.
  status_ = r > 0 ? decode_wait_status(wstatus) : ExitStatus{};
  reaped_ = true;
  return true;
}

void Process::reap_blocking() {
  // Wait for the exit without reaping (WNOWAIT) and without the mutex, so kill() from
  // another thread is never stuck behind us; the pid stays ours until try_reap().
  while (!try_reap()) {
    siginfo_t info;
    waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT);
  }
}

std::optional<ExitStatus> Process::wait_for(milliseconds timeout) {
  if (try_reap()) return status_;
  const auto deadline = Clock::now() + std::max(timeout, milliseconds(0));
  if (pidfd_ >= 0) {
    for (;;) {
      pollfd pfd{pidfd_, POLLIN, 0};
      int ready = poll(&pfd, 1, remaining_ms(deadline));
      if (ready > 0) {
        reap_blocking();
        return status_;
      }
      if (ready == 0) return std::nullopt;
      if (errno != EINTR) break;  // fall back to the waitpid loop below
    }
  }
  auto step = milliseconds(1);
  while (!try_reap()) {
    auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return std::nullopt;
    std::this_thread::sleep_for(std::min<Clock::duration>(step, left));
    step = std::min(step * 2, milliseconds(50));
  }
  return status_;
}

ExitStatus Process::wait() {
  reap_blocking();
  return *status_;
}

std::optional<ExitStatus> Process::exit_status() const {
  return reaped_ ? status_ : std::nullopt;
}

void Process::kill(int sig) {
  // Under the mutex, reaping cannot slip in between the check and the signal, so the
  // pid is still our (unreaped) child and cannot have been recycled.
  std::lock_guard lock(kill_mu_);
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

std::string Process::stderr_text() {
  if (!stderr_) return {};
  // Before the child is reaped this is what arrived so far; joining then could wait
  // for as long as the child runs.
  if (reaped_) join_stderr();
  std::lock_guard lock(stderr_->mu);
  return stderr_->text;
}

void Process::join_stderr() {
  if (!stderr_ || !stderr_->thread.joinable()) return;
  uint64_t one = 1;
  if (write(stderr_->wake.get(), &one, sizeof one) < 0) {
    // Cannot happen for a fresh eventfd; without the wake-up the reader still ends
    // at EOF.
  }
  stderr_->thread.join();
  stderr_->fd.reset();
  stderr_->wake.reset();
}

namespace {

Status timeout_status(const std::string& cmd, milliseconds timeout) {
  return Status(Code::kTimeout, cmd + " timed out after " + format_duration(timeout) +
                                    " and was killed");
}

// Writes what the pipe takes of `input` from `*written` on. A child that stops reading
// (EPIPE) is not an error here: its exit status tells whether that was a failure.
Status feed_stdin(Process& p, const std::string& input, size_t* written,
                  const std::string& cmd) {
  ssize_t n = write(p.stdin_fd(), input.data() + *written, input.size() - *written);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return Status::Ok();
    if (errno == EPIPE) {
      p.close_stdin();
      return Status::Ok();
    }
    return io_error("writing to the stdin of " + cmd, errno);
  }
  *written += static_cast<size_t>(n);
  if (*written == input.size()) p.close_stdin();
  return Status::Ok();
}

Status collect_stdout(Process& p, size_t max_output, std::string* out,
                      const std::string& cmd) {
  char buf[64 * 1024];
  ssize_t n = read(p.stdout_fd(), buf, sizeof buf);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return Status::Ok();
    return io_error("reading the stdout of " + cmd, errno);
  }
  if (n == 0) {
    p.close_stdout();
    return Status::Ok();
  }
  if (out->size() + static_cast<size_t>(n) > max_output) {
    return Status(Code::kIoError, cmd + " wrote more than " + std::to_string(max_output) +
                                      " bytes to stdout and was killed");
  }
  out->append(buf, static_cast<size_t>(n));
  return Status::Ok();
}

// Feeds stdin and collects stdout together, so a child that writes a lot before it
// has read all its input never deadlocks against us. Ends when both are closed.
Status pump(Process& p, const RunOptions& options, Clock::time_point deadline,
            std::string* out, const std::string& cmd) {
  size_t written = 0;
  while (p.stdin_fd() >= 0 || p.stdout_fd() >= 0) {
    if (Clock::now() >= deadline) return timeout_status(cmd, options.timeout);
    pollfd fds[2];
    nfds_t n = 0;
    int in_idx = -1, out_idx = -1;
    if (p.stdin_fd() >= 0) {
      in_idx = static_cast<int>(n);
      fds[n++] = {p.stdin_fd(), POLLOUT, 0};
    }
    if (p.stdout_fd() >= 0) {
      out_idx = static_cast<int>(n);
      fds[n++] = {p.stdout_fd(), POLLIN, 0};
    }
    int ready = poll(fds, n, remaining_ms(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return io_error("poll", errno);
    }
    if (ready == 0) return timeout_status(cmd, options.timeout);
    if (in_idx >= 0 && fds[in_idx].revents != 0) {
      ZPS_RETURN_IF_ERROR(feed_stdin(p, options.input, &written, cmd));
    }
    if (out_idx >= 0 && fds[out_idx].revents != 0) {
      ZPS_RETURN_IF_ERROR(collect_stdout(p, options.max_output, out, cmd));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<RunOutput> run(const std::vector<std::string>& argv, const RunOptions& options) {
  const auto deadline = Clock::now() + options.timeout;
  const std::string cmd = format_argv(argv);
  SpawnOptions spawn_options;
  spawn_options.pipe_stdin = !options.input.empty();
  spawn_options.pipe_stdout = true;
  spawn_options.stderr_limit = options.stderr_limit;
  auto spawned = Process::spawn(argv, spawn_options);
  if (!spawned.ok()) return spawned.status();
  Process& p = **spawned;
  ZPS_RETURN_IF_ERROR(set_nonblocking(p.stdin_fd()));
  ZPS_RETURN_IF_ERROR(set_nonblocking(p.stdout_fd()));

  RunOutput result;
  {
    SigpipeBlock no_sigpipe;
    // On any error the Process destructor kills and reaps the child.
    ZPS_RETURN_IF_ERROR(pump(p, options, deadline, &result.out, cmd));
  }
  auto status = p.wait_for(milliseconds(remaining_ms(deadline)));
  if (!status) return timeout_status(cmd, options.timeout);
  result.status = *status;
  result.err = p.stderr_text();
  return result;
}

std::string format_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    out += needs_quotes(arg) ? quote(arg) : arg;
  }
  return out;
}

}  // namespace zps
