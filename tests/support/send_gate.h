// Holding a hop in flight, and looking at what runs under an agent: the tools the
// cluster and fault tests use to put a job exactly where a failure must hit it.
//
// SendGate is a `zfs` for a sending agent (its --zfs): while the gate is closed, every
// `zfs send` that starts passes its first MiB and then waits until the gate opens;
// everything else runs the real zfs at once. So `zfs recv` runs on the receiver with
// part of the stream, for as long as a test needs. Stopping the zfs process with
// SIGSTOP would not do: zfs-fuse's zfs hands the stream's descriptor to the daemon,
// which keeps writing it. When the agent kills a held send (cancel, stop), the waiting
// part notices and exits, so the real zfs send ends on a broken pipe.
//
// Thread-safety: one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace zps::test {

inline constexpr size_t kHeldBytes = 1 << 20;  // what a held zfs send lets through first

// The real zfs, found on PATH as the agents would find it.
std::string real_zfs();

class SendGate {
 public:
  explicit SendGate(const std::string& dir);  // writes the script into `dir`
  ~SendGate();  // opens the gate: never leave a held zfs send behind
  SendGate(const SendGate&) = delete;
  SendGate& operator=(const SendGate&) = delete;

  const std::string& zfs_path() const { return script_; }
  // Sends that start from now on are held after their first MiB.
  void close();
  // Held sends run on; new ones are not held.
  void open();
  // True once a send has streamed its first MiB and waits at the gate.
  bool holding() const;

 private:
  std::string script_;
  std::string gate_;
  std::string held_;
};

// Polls `done` every 50 ms until it is true or `timeout` passed; its last answer.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);

// Live (not zombie) children of `parent` whose argv[1] is `verb` ("recv", "send").
std::vector<pid_t> zfs_children(pid_t parent, const std::string& verb);

// How many of `lines` contain `needle`.
size_t count_containing(const std::vector<std::string>& lines, const std::string& needle);

}  // namespace zps::test
