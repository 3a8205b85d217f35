// The fixture of the fault tests (tests/fault/): a broker, a sending agent src1 whose
// zfs sends can be held in flight (SendGate), a receiving agent dst1, one pool each,
// and the checks every fault case ends with: nothing partial on the target (its
// snapshots are a prefix of the source's, by guid, and no half-received dataset is
// left), no lock left behind, and a re-run that brings the target level with the source.
//
// Thread-safety: one thread (a GoogleTest fixture).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/cluster.h"
#include "tests/support/send_gate.h"

namespace zps::test {

class FaultTest : public ClusterTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts the broker, src1 (through the gate, sends only) and dst1 (receives under
  // root_), each with its extra flags, and waits until both agents are alive.
  void start_cluster(const std::vector<std::string>& broker_extra = {},
                     const std::vector<std::string>& src_extra = {},
                     const std::vector<std::string>& dst_extra = {});

  // A dataset under the source pool with `snaps` snapshots s1..sN, each with a file of
  // `bytes` random bytes.
  std::string make_source(const std::string& name, int snaps, size_t bytes);

  // `zpsctl replicate ... --detach`: the job id.
  uint64_t replicate_detached(const std::vector<std::string>& args);
  // Waits until a zfs send has streamed its first MiB into a zfs recv running under
  // dst1 and is held at the closed gate.
  void wait_hop_held();
  // `zpsctl watch ID`: the job as it ended.
  CtlResult watch(uint64_t job);
  // `zpsctl job ID` as JSON.
  nlohmann::json job(uint64_t id);
  nlohmann::json locks();
  // Waits (up to `timeout`) until `zpsctl locks` is empty; false when it never was.
  bool wait_locks_released(std::chrono::milliseconds timeout);
  // The agent's pid, or a RigError.
  pid_t pid_of(const std::string& agent);

  // The target's snapshots are a prefix of the source's (guid by guid), and nothing
  // half-received is left under the receive root.
  void expect_nothing_partial(const std::string& source, const std::string& target);
  // Replicates again and expects success and the target level with the source:
  // snapshots by guid and files. Returns the job.
  nlohmann::json rerun_until_level(const std::string& source, const std::string& target);

  // Whether `text` contains `needle` (for EXPECT_TRUE with a message).
  static bool contains(const std::string& text, const std::string& needle) {
    return text.find(needle) != std::string::npos;
  }
  // All warnings of a job's JSON, one per line.
  static std::string warnings_of(const nlohmann::json& job);

  std::string src_, dst_, root_;
  std::unique_ptr<SendGate> gate_;
};

}  // namespace zps::test
