// Runs one replication job on the sending agent ("the client is smart").
//
// For each dataset of the job (with -r: the dataset and its descendants, parents before
// children and origins before their clones, independent datasets in parallel up to a
// limit) it asks the receiver, through the broker, what the target holds, then loops:
// list the source afresh, plan the next single hop, ask the receiver to prepare, run
// `zfs send` (full or -i), stream it over the data pipe, and wait for the receiver's
// verdict. Transient failures (pipe cut, stall, receiver gone for a while) are retried
// with back-off; refusals and zfs's own errors end the job with zfs's words. A receiver
// at its --max-recvs limit ("busy") is waited for, without spending an attempt.
//
// Thread-safety: run() on one thread; cancel() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "agent/bus.h"
#include "shared/keys.h"
#include "shared/pipe.h"
#include "shared/plan.h"
#include "shared/protocol.h"
#include "shared/zfs.h"

namespace zps::agent {

struct SenderConfig {
  std::string agent_id;
  std::string bus_endpoint;
  int parallel = 4;        // datasets of a -r job in flight at once
  int hop_attempts = 5;    // tries of one hop before the job fails
  std::chrono::milliseconds retry_backoff{1000};  // doubles after each failed try
  std::chrono::milliseconds prepare_timeout{std::chrono::seconds(60)};
  pipe::Options pipe;
  // CURVE: this agent's keys; the data pipe is then a CURVE client of the receiver's
  // key, which the broker took from its authorized keys (PrepareReply::server_key).
  std::optional<KeyPair> keys;
};

// One dataset to bring up to date: where it comes from and where it goes.
struct DatasetTask {
  std::string source;
  std::string target;
  std::optional<std::string> origin;  // full origin snapshot name on the source, for clones
};

// Orders a -r job's datasets: parents before children, origins before clones. Returns
// for each task the indexes of the tasks it waits for. Pure, for tests.
std::vector<std::vector<size_t>> task_dependencies(const std::vector<DatasetTask>& tasks);

class JobRunner {
 public:
  JobRunner(Zfs& zfs, zmq::context_t& ctx, const SenderConfig& config, proto::JobStart job,
            uint64_t start_request);

  void run();
  // Stops the job at the next opportunity; it ends with `code` and `reason`
  // (kCancelled for an operator's cancel, kUnavailable when the agent is stopping, in
  // which case the end is reported once, without waiting for a broker that is away).
  void cancel(Code code, const std::string& reason);
  uint64_t job_id() const { return job_.job; }
  bool finished() const { return finished_.load(); }

 private:
  Result<std::vector<DatasetTask>> list_tasks();
  Status run_tasks(const std::vector<DatasetTask>& tasks);
  Status sync_dataset(BusClient& bus, const DatasetTask& task);
  Result<TargetView> target_view(BusClient& bus, const DatasetTask& task, uint64_t origin_guid);
  // `plain`: try an incremental as a plain receive; cleared when zfs recv refuses one.
  Status run_hop(BusClient& bus, const DatasetTask& task, const HopPlan& plan, uint32_t n,
                 uint32_t of, bool& plain);
  // One try of a hop: prepare (waiting while the receiver is busy), then stream_hop.
  Status prepare_and_stream(BusClient& bus, const DatasetTask& task, const HopPlan& plan,
                            uint32_t n, const proto::PrepareRequest& prep_req,
                            proto::RecvResultReply& verdict);
  Status stream_hop(BusClient& bus, const DatasetTask& task, const HopPlan& plan, uint32_t n,
                    const proto::PrepareReply& prep, proto::RecvResultReply& verdict);
  // Aborts the receiver's session and waits for its verdict; nullopt when none came.
  std::optional<proto::RecvResultReply> settle_session(BusClient& bus, uint64_t session,
                                                       const std::string& reason);
  // kZfsFailed with zfs recv's own words when the verdict says zfs recv failed by itself
  // (out of space, a refused stream), else Ok.
  Status zfs_recv_failure(const DatasetTask& task, const proto::RecvResultReply& verdict) const;
  Status replan_after_send_failure(const DatasetTask& task, const HopPlan& plan, const Status& failure);
  void update(BusClient& bus, proto::JobUpdate u);
  void warn(BusClient& bus, const std::string& message);
  void end_job(BusClient& bus, const Status& outcome);
  bool sleep_unless_cancelled(std::chrono::milliseconds d);
  Status cancelled() const;

  Zfs& zfs_;
  zmq::context_t& ctx_;
  const SenderConfig& config_;
  proto::JobStart job_;
  uint64_t start_request_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> stop_{false};  // another dataset failed: stop after the current hop
  std::atomic<bool> finished_{false};
  std::atomic<uint32_t> hop_counter_{0};
  std::atomic<bool> sessions_unsettled_{false};
  mutable std::mutex mu_;
  Status cancel_status_;  // under mu_
  std::set<std::string> warned_;  // under mu_
};

}  // namespace zps::agent
