#include "shared/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace zps {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr size_t kMiB = 1024 * 1024;

class ProcessTest : public ::testing::Test {
 protected:
  // Our programs ignore SIGPIPE in main(); so do the tests that write to pipes.
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }
};

// Entries in /proc/self/fd (the directory handle itself counts the same every time).
int open_fd_count() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (readdir(dir) != nullptr) ++n;
  closedir(dir);
  return n;
}

// True when `pid` is neither running nor a zombie of ours.
bool is_gone(pid_t pid) {
  int status;
  errno = 0;
  bool not_our_child = waitpid(pid, &status, WNOHANG) == -1 && errno == ECHILD;
  struct stat st;
  bool no_proc_entry = stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0;
  return not_our_child && no_proc_entry;
}

// True when this test process has no children at all (none running, no zombie).
bool has_no_children() {
  int status;
  errno = 0;
  return waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
}

std::unique_ptr<Process> spawn_ok(const std::vector<std::string>& argv,
                                  const SpawnOptions& options = {}) {
  auto p = Process::spawn(argv, options);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return p.ok() ? std::move(p).value() : nullptr;
}

// Reads fd until EOF.
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      return out;
    }
  }
}

TEST_F(ProcessTest, DescribesExitAndSignal) {
  EXPECT_EQ((ExitStatus{0, 0}).describe(), "exit status 0");
  EXPECT_EQ((ExitStatus{1, 0}).describe(), "exit status 1");
  EXPECT_EQ((ExitStatus{-1, 9}).describe(), "killed by signal 9 (Killed)");
  EXPECT_TRUE((ExitStatus{0, 0}).ok());
  EXPECT_FALSE((ExitStatus{1, 0}).ok());
  EXPECT_FALSE((ExitStatus{-1, 9}).ok());
}

TEST_F(ProcessTest, FormatsArgvWithQuotesWhereNeeded) {
  EXPECT_EQ(format_argv({"zfs", "send", "-i", "pool/a@1", "pool/a@2"}),
            "zfs send -i pool/a@1 pool/a@2");
  EXPECT_EQ(format_argv({"echo", "a b", ""}), "echo 'a b' ''");
  EXPECT_EQ(format_argv({"echo", "it's", "say \"hi\""}), "echo 'it'\\''s' 'say \"hi\"'");
  EXPECT_EQ(format_argv({}), "");
}

TEST_F(ProcessTest, ReportsExitCodes) {
  auto t = spawn_ok({"true"});
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->wait().ok());
  ASSERT_TRUE(t->exit_status().has_value());
  EXPECT_EQ(t->exit_status()->code, 0);

  auto f = spawn_ok({"false"});
  ASSERT_TRUE(f);
  ExitStatus fs = f->wait();
  EXPECT_EQ(fs.code, 1);
  EXPECT_EQ(fs.signal, 0);
  EXPECT_EQ(fs.describe(), "exit status 1");

  auto three = spawn_ok({"sh", "-c", "exit 3"});
  ASSERT_TRUE(three);
  auto ts = three->wait_for(milliseconds(10000));
  ASSERT_TRUE(ts.has_value());
  EXPECT_EQ(ts->code, 3);
  // Waiting again returns the same status.
  EXPECT_EQ(three->wait().code, 3);
}

TEST_F(ProcessTest, MissingProgramIsNotFound) {
  auto p = Process::spawn({"zps-no-such-program-4711", "arg"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kNotFound);
  EXPECT_NE(p.status().message().find("zps-no-such-program-4711"), std::string::npos);

  auto abs = Process::spawn({"/nonexistent/dir/prog"});
  ASSERT_FALSE(abs.ok());
  EXPECT_EQ(abs.status().code(), Code::kNotFound);

  auto r = run({"zps-no-such-program-4711"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST_F(ProcessTest, NonExecutableIsIoError) {
  auto p = Process::spawn({"/dev/null"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kIoError);
  EXPECT_NE(p.status().message().find("/dev/null"), std::string::npos);
}

TEST_F(ProcessTest, EmptyArgvIsRefused) {
  auto p = Process::spawn({});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kInvalidArgument);
}

TEST_F(ProcessTest, WaitForTimesOutThenKill) {
  auto p = spawn_ok({"sleep", "30"});
  ASSERT_TRUE(p);
  pid_t pid = p->pid();
  auto start = Clock::now();
  EXPECT_FALSE(p->wait_for(milliseconds(100)).has_value());
  EXPECT_GE(Clock::now() - start, milliseconds(100));
  EXPECT_FALSE(p->exit_status().has_value());

  p->kill(SIGKILL);
  auto status = p->wait_for(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->signal, SIGKILL);
  EXPECT_EQ(status->code, -1);
  EXPECT_NE(status->describe().find("signal 9"), std::string::npos) << status->describe();
  // kill() after the reap is a no-op, not a signal to whoever got the pid next.
  p->kill(SIGKILL);
  p.reset();
  EXPECT_TRUE(is_gone(pid));
}

TEST_F(ProcessTest, KillWithOtherSignal) {
  auto p = spawn_ok({"sleep", "30"});
  ASSERT_TRUE(p);
  p->kill(SIGTERM);
  ExitStatus s = p->wait();
  EXPECT_EQ(s.signal, SIGTERM);
  EXPECT_NE(s.describe().find("signal 15"), std::string::npos);
}

TEST_F(ProcessTest, DestructorKillsAndReapsRunningChild) {
  SpawnOptions o;
  o.pipe_stdin = true;
  o.pipe_stdout = true;
  auto p = spawn_ok({"sleep", "30"}, o);
  ASSERT_TRUE(p);
  pid_t pid = p->pid();
  auto start = Clock::now();
  p.reset();
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
  EXPECT_TRUE(is_gone(pid));
}

TEST_F(ProcessTest, CapturesStderr) {
  auto p = spawn_ok({"sh", "-c", "echo oops >&2; exit 2"});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->wait().code, 2);
  EXPECT_EQ(p->stderr_text(), "oops\n");
  EXPECT_EQ(p->stderr_text(), "oops\n");  // stable after the join
}

TEST_F(ProcessTest, StderrIsBoundedAndChildNeverBlocks) {
  SpawnOptions o;
  o.stderr_limit = 1000;
  auto p = spawn_ok({"sh", "-c", "head -c 1048576 /dev/zero >&2; echo done >&2"}, o);
  ASSERT_TRUE(p);
  auto status = p->wait_for(milliseconds(20000));
  ASSERT_TRUE(status.has_value()) << "child blocked on a full stderr pipe";
  EXPECT_EQ(status->code, 0);
  std::string err = p->stderr_text();
  EXPECT_EQ(err.size(), 1000u);
  EXPECT_EQ(err, std::string(1000, '\0'));
}

TEST_F(ProcessTest, StderrTextDoesNotHangOnGrandchildHoldingThePipe) {
  // The grandchild keeps stderr open for 30 s; its pid comes back on stdout.
  SpawnOptions o;
  o.pipe_stdout = true;
  auto p = spawn_ok({"sh", "-c", "echo hi >&2; sleep 30 >/dev/null & echo $!"}, o);
  ASSERT_TRUE(p);
  std::string out = read_all(p->stdout_fd());
  EXPECT_EQ(p->wait().code, 0);
  auto start = Clock::now();
  EXPECT_EQ(p->stderr_text(), "hi\n");
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  pid_t grandchild = static_cast<pid_t>(std::stol(out));
  ASSERT_GT(grandchild, 1);
  ::kill(grandchild, SIGKILL);  // we started it; nobody else will end it
}

TEST_F(ProcessTest, PipesStdinToStdout) {
  SpawnOptions o;
  o.pipe_stdin = true;
  o.pipe_stdout = true;
  auto p = spawn_ok({"cat"}, o);
  ASSERT_TRUE(p);
  ASSERT_GE(p->stdin_fd(), 3);
  ASSERT_GE(p->stdout_fd(), 3);
  ASSERT_EQ(write(p->stdin_fd(), "hello", 5), 5);
  p->close_stdin();
  EXPECT_EQ(p->stdin_fd(), -1);
  EXPECT_EQ(read_all(p->stdout_fd()), "hello");
  EXPECT_TRUE(p->wait().ok());
}

TEST_F(ProcessTest, WritingToExitedChildIsEpipe) {
  SpawnOptions o;
  o.pipe_stdin = true;
  auto p = spawn_ok({"true"}, o);
  ASSERT_TRUE(p);
  p->wait();
  errno = 0;
  EXPECT_EQ(write(p->stdin_fd(), "x", 1), -1);
  EXPECT_EQ(errno, EPIPE);
}

TEST_F(ProcessTest, UnpipedStdinIsDevNull) {
  auto r = run({"cat"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->status.ok());
  EXPECT_EQ(r->out, "");
}

TEST_F(ProcessTest, ChildSeesOnlyStdio) {
  // A descriptor leaked without O_CLOEXEC (as a careless library might) must not
  // reach the child either.
  int leaky = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 3);
  auto r = run({"sh", "-c", "ls /proc/$$/fd"});
  close(leaky);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->status.ok()) << r->err;
  EXPECT_EQ(r->out, "0\n1\n2\n");
}

TEST_F(ProcessTest, RunCollectsLargeOutput) {
  auto r = run({"head", "-c", "64M", "/dev/zero"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->status.ok());
  EXPECT_EQ(r->out.size(), 64 * kMiB);
}

TEST_F(ProcessTest, RunFeedsLargeInputWhileReadingOutput) {
  RunOptions o;
  o.input.resize(16 * kMiB);
  for (size_t i = 0; i < o.input.size(); ++i) o.input[i] = static_cast<char>(i * 31 + i / 4096);
  auto r = run({"cat"}, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->status.ok());
  EXPECT_EQ(r->out.size(), o.input.size());
  EXPECT_TRUE(r->out == o.input);
}

TEST_F(ProcessTest, RunTreatsNonZeroExitAsStatus) {
  auto r = run({"sh", "-c", "echo out; echo err >&2; exit 5"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status.code, 5);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST_F(ProcessTest, RunInputIgnoredByChildIsNotAnError) {
  RunOptions o;
  o.input.assign(16 * kMiB, 'x');
  auto r = run({"true"}, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->status.ok());
}

TEST_F(ProcessTest, RunSurvivesSigpipeWithDefaultDisposition) {
  // run() must protect a caller that did not ignore SIGPIPE: without that, this test
  // binary dies here.
  signal(SIGPIPE, SIG_DFL);
  RunOptions o;
  o.input.assign(4 * kMiB, 'x');
  auto r = run({"head", "-c", "10"}, o);
  sigset_t pending;
  sigpending(&pending);
  bool left_pending = sigismember(&pending, SIGPIPE) == 1;
  signal(SIGPIPE, SIG_IGN);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->status.ok());
  EXPECT_EQ(r->out, "xxxxxxxxxx");
  EXPECT_FALSE(left_pending);
}

TEST_F(ProcessTest, RunTimesOut) {
  RunOptions o;
  o.timeout = milliseconds(200);
  auto start = Clock::now();
  auto r = run({"sleep", "30"}, o);
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_NE(r.status().message().find("sleep 30"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("200 ms"), std::string::npos) << r.status().message();
  EXPECT_TRUE(has_no_children());
}

TEST_F(ProcessTest, RunTimesOutOnEndlessOutput) {
  RunOptions o;
  o.timeout = milliseconds(300);
  auto r = run({"cat", "/dev/zero"}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout) << r.status().to_string();
  EXPECT_TRUE(has_no_children());
}

TEST_F(ProcessTest, RunFailsWhenOutputExceedsLimit) {
  RunOptions o;
  o.max_output = 1000;
  auto r = run({"head", "-c", "1M", "/dev/zero"}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kIoError);
  EXPECT_NE(r.status().message().find("1000"), std::string::npos) << r.status().message();
  EXPECT_TRUE(has_no_children());

  o.max_output = 1024;  // exactly at the limit is fine
  auto exact = run({"head", "-c", "1024", "/dev/zero"}, o);
  ASSERT_TRUE(exact.ok()) << exact.status().to_string();
  EXPECT_EQ(exact->out.size(), 1024u);
}

TEST_F(ProcessTest, KillFromAnotherThreadUnblocksStdoutReader) {
  SpawnOptions o;
  o.pipe_stdout = true;
  auto p = spawn_ok({"sleep", "30"}, o);
  ASSERT_TRUE(p);
  Process* raw = p.get();
  std::thread killer([raw] {
    std::this_thread::sleep_for(milliseconds(100));
    raw->kill(SIGKILL);
  });
  auto start = Clock::now();
  std::string out = read_all(p->stdout_fd());  // blocks until the kill closes stdout
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
  EXPECT_EQ(out, "");
  killer.join();
  EXPECT_EQ(p->wait().signal, SIGKILL);
}

TEST_F(ProcessTest, KillFromAnotherThreadUnblocksWait) {
  auto p = spawn_ok({"sleep", "30"});
  ASSERT_TRUE(p);
  Process* raw = p.get();
  std::thread killer([raw] {
    std::this_thread::sleep_for(milliseconds(100));
    raw->kill(SIGKILL);
  });
  auto start = Clock::now();
  ExitStatus s = p->wait();
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
  killer.join();
  EXPECT_EQ(s.signal, SIGKILL);
}

TEST_F(ProcessTest, ConcurrentKillsRaceTheReapSafely) {
  // kill() from many threads while the owner reaps: none may hit a reaped pid, and
  // none may block the reap (both would hang or crash here).
  for (int round = 0; round < 20; ++round) {
    auto p = spawn_ok({"true"});
    ASSERT_TRUE(p);
    Process* raw = p.get();
    std::vector<std::thread> killers;
    for (int i = 0; i < 4; ++i) {
      killers.emplace_back([raw] {
        for (int k = 0; k < 50; ++k) raw->kill(0);
      });
    }
    p->wait();
    for (auto& t : killers) t.join();
  }
  EXPECT_TRUE(has_no_children());
}

TEST_F(ProcessTest, NoZombieAfterAnyOutcome) {
  std::vector<pid_t> pids;
  {
    auto ok = spawn_ok({"true"});
    ASSERT_TRUE(ok);
    pids.push_back(ok->pid());
    ok->wait();
  }
  {
    // Exited but never waited for: the destructor reaps it.
    auto unwaited = spawn_ok({"false"});
    ASSERT_TRUE(unwaited);
    pids.push_back(unwaited->pid());
    std::this_thread::sleep_for(milliseconds(50));
  }
  {
    auto timed_out = spawn_ok({"sleep", "30"});
    ASSERT_TRUE(timed_out);
    pids.push_back(timed_out->pid());
    EXPECT_FALSE(timed_out->wait_for(milliseconds(20)).has_value());
  }
  {
    SpawnOptions o;
    o.pipe_stdin = true;
    o.pipe_stdout = true;
    auto piped = spawn_ok({"cat"}, o);
    ASSERT_TRUE(piped);
    pids.push_back(piped->pid());
  }
  for (pid_t pid : pids) EXPECT_TRUE(is_gone(pid)) << pid;
  EXPECT_TRUE(has_no_children());
}

// One of every outcome; used to check that none of them leaks a descriptor.
void run_every_outcome() {
  { auto p = spawn_ok({"true"}); if (p) p->wait(); }
  { auto p = spawn_ok({"false"}); if (p) { p->wait(); p->stderr_text(); } }
  { auto p = Process::spawn({"zps-no-such-program-4711"}); EXPECT_FALSE(p.ok()); }
  {
    auto p = spawn_ok({"sleep", "30"});
    if (p) {
      p->wait_for(milliseconds(10));
      p->kill(SIGKILL);
      p->wait();
    }
  }
  {
    SpawnOptions o;
    o.pipe_stdin = true;
    o.pipe_stdout = true;
    auto p = spawn_ok({"sleep", "30"}, o);  // destroyed while running, pipes open
  }
  {
    SpawnOptions o;
    o.pipe_stdin = true;
    o.pipe_stdout = true;
    auto p = spawn_ok({"cat"}, o);
    if (p) {
      p->close_stdin();
      p->close_stdout();
      p->wait();
    }
  }
  {
    SpawnOptions o;
    o.stderr_limit = 10;
    auto p = spawn_ok({"sh", "-c", "head -c 100000 /dev/zero >&2"}, o);
    if (p) {
      p->wait();
      EXPECT_EQ(p->stderr_text().size(), 10u);
    }
  }
  EXPECT_TRUE(run({"sh", "-c", "echo out; echo err >&2; exit 1"}).ok());
  {
    RunOptions o;
    o.timeout = milliseconds(50);
    EXPECT_EQ(run({"sleep", "30"}, o).status().code(), Code::kTimeout);
  }
  {
    RunOptions o;
    o.max_output = 10;
    EXPECT_EQ(run({"head", "-c", "100000", "/dev/zero"}, o).status().code(), Code::kIoError);
  }
  {
    RunOptions o;
    o.input.assign(kMiB, 'x');
    EXPECT_TRUE(run({"true"}, o).ok());
  }
  EXPECT_FALSE(run({"zps-no-such-program-4711"}).ok());
}

TEST_F(ProcessTest, NoDescriptorLeakAfterAnyOutcome) {
  run_every_outcome();  // warm up: lazily opened descriptors (if any) open here
  int before = open_fd_count();
  ASSERT_GT(before, 0);
  for (int i = 0; i < 3; ++i) run_every_outcome();
  EXPECT_EQ(open_fd_count(), before);
  EXPECT_TRUE(has_no_children());
}

}  // namespace
}  // namespace zps
