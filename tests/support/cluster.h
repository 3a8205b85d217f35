// A real zpsend cluster for tests: a zps-broker and zps-agents as separate processes on
// loopback, each agent receiving into its own zfs-fuse pool as if it were its own host,
// driven through the real zpsctl binary.
//
// Everything it starts it stops (SIGTERM, then SIGKILL, by pid); state directories and
// logs live in the rig's temporary directory, and the logs of every process are
// printed when a test fails, so a failure can be read without re-running it.
//
// Thread-safety: one thread.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shared/process.h"
#include "shared/status.h"
#include "tests/support/zfs_rig.h"

namespace zps::test {

class ClusterKeys;

struct AgentSpec {
  std::string id;
  std::vector<std::string> recv_roots;
  std::vector<std::string> extra_args;  // e.g. {"--max-recvs", "2"}
};

struct CtlResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  nlohmann::json json;  // parsed stdout when it was JSON, else null
  std::string describe() const;  // for assertion messages
};

class Cluster {
 public:
  // `dir`: where state, logs and key files go (the rig's directory).
  explicit Cluster(std::string dir, int heartbeat_ms = 200);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Starts the broker on an ephemeral loopback port (later restarts reuse the port and
  // the state directory). Waits until it listens.
  Status start_broker(const std::vector<std::string>& extra_args = {});
  // Stops the broker with `sig` and waits for it to exit; how it exited (nullopt when
  // it was not running, or needed a SIGKILL after 10 s).
  std::optional<ExitStatus> stop_broker(int sig = 15);
  Status restart_broker(int sig = 9);
  pid_t broker_pid() const;
  const std::string& endpoint() const { return endpoint_; }
  // The broker's --heartbeat-ms for the next start_broker() (the agents learn it from
  // the broker's hello reply); e.g. 1000, the programs' default, to time the real
  // liveness window.
  void set_heartbeat_ms(int ms) { heartbeat_ms_ = ms; }
  int heartbeat_ms() const { return heartbeat_ms_; }

  // Starts an agent connected to the broker, with its own data port range and
  // --zfs-log. Does not wait for registration (see wait_alive).
  Status start_agent(const AgentSpec& spec);
  void stop_agent(const std::string& id, int sig = 15);
  Status restart_agent(const std::string& id);
  pid_t agent_pid(const std::string& id) const;
  // The agent's --data-ports range as the cluster gave it (kDataPortsPerAgent ports
  // from this one), e.g. for a proxy in front of them; 0 for an unknown agent.
  static constexpr uint16_t kDataPortsPerAgent = 40;
  uint16_t data_port_lo(const std::string& id) const;
  // Every zfs argv the agent ran, one per line.
  std::vector<std::string> zfs_commands(const std::string& id) const;

  // Waits until `zpsctl agents` shows each id alive (or not alive).
  Status wait_alive(const std::vector<std::string>& ids,
                    std::chrono::milliseconds timeout = std::chrono::seconds(15));
  Status wait_dead(const std::string& id,
                   std::chrono::milliseconds timeout = std::chrono::seconds(15));

  // Runs zpsctl against this cluster's broker; with `json`, --json is passed and stdout
  // parsed.
  CtlResult ctl(const std::vector<std::string>& args, bool json = true,
                std::chrono::seconds timeout = std::chrono::seconds(300));
  // Starts zpsctl without waiting (for concurrent jobs); collect with finish().
  std::unique_ptr<Process> ctl_async(const std::vector<std::string>& args, bool json = true);
  static CtlResult finish(Process& p, bool json = true);

  // CURVE mode (call before start_broker): key pairs for the broker, `agents` and an
  // operator, an authorized-keys file, and the key flags on every program this cluster
  // starts afterwards. A start_agent, ctl or start_broker whose arguments carry their
  // own --key keep theirs instead.
  Status enable_curve(const std::vector<std::string>& agents);
  const ClusterKeys* keys() const { return keys_.get(); }

  // All logs so far, for failure messages.
  std::string logs() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Proc {
    std::unique_ptr<Process> process;
    std::vector<std::string> argv;
    std::string log;
  };
  Result<std::unique_ptr<Process>> spawn_logged(const std::vector<std::string>& argv,
                                                const std::string& log);
  std::optional<ExitStatus> stop(Proc& p, int sig);

  std::string dir_;
  int heartbeat_ms_;
  std::string endpoint_;
  Proc broker_;
  std::vector<std::string> broker_extra_;
  std::map<std::string, Proc> agents_;
  std::map<std::string, AgentSpec> specs_;
  std::map<std::string, uint16_t> data_port_lo_;
  uint16_t port_block_ = 0;  // first port of the block this cluster holds
  int port_lock_fd_ = -1;     // the block's lock, held for the cluster's lifetime
  uint16_t next_port_ = 0;
  std::unique_ptr<ClusterKeys> keys_;  // set: CURVE mode
};

// A ZfsTest with a cluster: the processes are stopped before the pools are destroyed,
// and their logs printed when the test failed.
class ClusterTest : public ZfsTest {
 protected:
  void SetUp() override;
  void TearDown() override;
  Cluster& cluster() { return *cluster_; }

  // Asserting helpers: they throw RigError with the logs when the step fails.
  void start_broker(const std::vector<std::string>& extra = {});
  void start_agent(const AgentSpec& spec);
  void wait_alive(const std::vector<std::string>& ids);

 private:
  std::unique_ptr<Cluster> cluster_;
};

}  // namespace zps::test
