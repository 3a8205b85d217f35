// Child processes started from an argv (never a shell), with optional pipes to their
// stdin and stdout and a bounded capture of their stderr.
//
// A Process owns its child: the destructor kills (SIGKILL) a child that is still
// running and reaps it, so no outcome leaves a zombie or a leaked descriptor. Every
// descriptor the helper creates is close-on-exec, and the child gets only fds 0-2.
//
// Thread-safety: a Process is used by one thread at a time, except kill(), which any
// thread may call (it is how a session aborts a transfer blocked in another thread).
//
// SIGPIPE: writing to stdin_fd() of a child that stopped reading raises SIGPIPE, so
// every program ignores SIGPIPE in main() and then sees EPIPE; run() blocks it around
// its own writes. Children start with SIGPIPE at its default and an empty signal mask.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shared/status.h"

namespace zps {

// How a child ended.
struct ExitStatus {
  int code = -1;    // exit code when it exited normally, else -1
  int signal = 0;   // the signal that killed it, else 0
  bool ok() const { return signal == 0 && code == 0; }
  // "exit status 1" / "killed by signal 9 (Killed)".
  std::string describe() const;
};

struct SpawnOptions {
  bool pipe_stdin = false;   // else stdin is /dev/null
  bool pipe_stdout = false;  // else stdout is /dev/null
  // At most this many bytes of stderr are kept (the first ones); the rest is read and
  // dropped so the child never blocks on a full stderr pipe.
  size_t stderr_limit = 64 * 1024;
  // When set, the child's stdout (unless piped) and stderr are appended to this file
  // instead: for long-running programs whose logs should outlive them. No stderr is
  // captured then.
  std::string log_file;
  // A descriptor the child gets as its fd 3 (nothing else is inherited): a held flock
  // then lasts exactly as long as the child (see MountGuard).
  int pass_fd = -1;
};

class Process {
 public:
  // Starts argv[0] (looked up in PATH when it has no '/') with argv. Fails with
  // kNotFound when the program does not exist, kIoError on other spawn failures.
  static Result<std::unique_ptr<Process>> spawn(const std::vector<std::string>& argv,
                                                const SpawnOptions& options = {});

  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::vector<std::string>& argv() const { return argv_; }

  // Pipe ends in the parent; -1 when not piped or already closed.
  int stdin_fd() const { return stdin_fd_; }
  int stdout_fd() const { return stdout_fd_; }
  void close_stdin();
  void close_stdout();

  // Waits until the child exits or `timeout` passes; nullopt on timeout.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
  // Waits without limit.
  ExitStatus wait();
  // The status once the child has been reaped.
  std::optional<ExitStatus> exit_status() const;

  // Sends `sig` to the child if it has not been reaped yet. Safe from any thread.
  void kill(int sig = 9);

  // The captured stderr (at most stderr_limit bytes). Complete once the child has
  // exited and been waited for (a grandchild still holding the pipe gets ~200 ms more);
  // before that, what has arrived so far.
  std::string stderr_text();

 private:
  Process() = default;
  void reap_blocking();
  bool try_reap();
  void join_stderr();

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::vector<std::string> argv_;
  std::optional<ExitStatus> status_;
  std::mutex kill_mu_;  // orders kill() against reaping, so a recycled pid is never hit
  std::atomic<bool> reaped_{false};

  struct StderrCapture;
  std::unique_ptr<StderrCapture> stderr_;
};

// What a finished short-lived command produced.
struct RunOutput {
  ExitStatus status;
  std::string out;
  std::string err;
};

struct RunOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  std::string input;                    // written to stdin, then stdin is closed
  size_t max_output = 256 * 1024 * 1024;  // stdout beyond this kills the child
  size_t stderr_limit = 64 * 1024;
};

// Runs argv to completion, collecting stdout. Fails with kTimeout (the child is
// killed) when it runs longer than options.timeout, kIoError when stdout exceeds
// max_output, kNotFound when the program does not exist. A non-zero exit is not an
// error here: the caller reads status.
Result<RunOutput> run(const std::vector<std::string>& argv, const RunOptions& options = {});

// Joins argv for logs, quoting arguments that contain spaces or quotes.
std::string format_argv(const std::vector<std::string>& argv);

}  // namespace zps
