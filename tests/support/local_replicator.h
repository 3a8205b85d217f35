// An in-process stand-in for a sending and a receiving agent, without network: it
// drives the zfs adapter and the planner hop by hop as the seed's loop does. Before
// every hop it lists the source and the target afresh and asks plan_next_hop(); a hop
// is `zfs send [-i A] B` piped straight into `zfs recv [-F] TARGET`. The zfs tests use
// it to check adapter and planner against real ZFS before any agent exists.
//
// Thread-safety: one thread. It ignores SIGPIPE for the whole process (a zfs recv that
// dies must give EPIPE on the pipe, not kill the test).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "shared/plan.h"
#include "shared/status.h"
#include "shared/zfs.h"
#include "tests/support/zfs_rig.h"

namespace zps::test {

// Copies everything read from `from` into `to` until EOF, counting bytes. Stops early
// when the reader goes away (EPIPE); the processes' exit statuses then tell why.
Status pump_stream(int from, int to, uint64_t* bytes);

struct LocalReplicationOptions {
  bool force = false;
  // A guard against a planner that never converges.
  size_t max_hops = 1000;
  // Where the receiving side looks for a clone's origin by guid; empty: the target's pool.
  std::string origin_search_root;
  // Called after each hop that succeeded, before the next listing: tests destroy or
  // create source snapshots here to play a sync that runs while the source changes.
  std::function<void(const HopPlan& hop, size_t index)> after_hop;
};

struct LocalReplicationResult {
  std::vector<HopPlan> hops;          // in the order they ran
  std::vector<std::string> warnings;  // from every plan, de-duplicated
  uint64_t bytes = 0;                 // stream bytes pumped over all hops
};

class LocalReplicator {
 public:
  // `source` and `target` may be the same adapter.
  LocalReplicator(Zfs& source, Zfs& target);

  // Runs hops until the planner says the target is up to date, or one fails.
  Result<LocalReplicationResult> replicate(const std::string& source_dataset,
                                           const std::string& target_dataset,
                                           const LocalReplicationOptions& options = {});

  // What the sender knows about its dataset: snapshots and, for a clone, the origin.
  Result<SourceView> source_view(const std::string& dataset);
  // What the receiver reports about the target, and whether it has the source's origin.
  Result<TargetView> target_view(const std::string& dataset, const SourceView& source,
                                 const std::string& origin_search_root);

 private:
  Status run_hop(const HopPlan& plan, const SourceView& source, const TargetView& target,
                 uint64_t* bytes);
  Status roll_back_to_common(const HopPlan& plan, const SourceView& source,
                             const TargetView& target);

  Zfs& source_;
  Zfs& target_;
};

// Records every argv the adapters it is attached to run (through Zfs::set_observer),
// so a test can check what was asked of zfs, e.g. that no send used -I.
class ArgvLog {
 public:
  void attach(Zfs& zfs);

  std::vector<std::vector<std::string>> all() const;
  // The argvs whose zfs subcommand (argv[1]) is `subcommand` ("send", "recv").
  std::vector<std::vector<std::string>> of(std::string_view subcommand) const;
  // The argvs that have `arg` as one of their arguments.
  std::vector<std::vector<std::string>> containing(std::string_view arg) const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::vector<std::vector<std::string>> argvs_;
};

// Fixture for replication tests: a source and a target pool, one adapter for both
// whose every argv is logged, and a LocalReplicator. After each test it checks that no
// argv the adapter formed contained -I.
class ReplicationTest : public ZfsTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  Result<LocalReplicationResult> replicate(const std::string& source, const std::string& target,
                                           const LocalReplicationOptions& options = {}) {
    return replicator_.replicate(source, target, options);
  }
  // Snapshot names (short) in creation order, as the rig reads them.
  std::vector<std::string> snapshot_names(const std::string& dataset);
  // Fails the test unless `target` has exactly `source`'s snapshots, same names and guids,
  // in the same order.
  void expect_same_snapshots(const std::string& source, const std::string& target);

  std::string src_;  // source pool
  std::string dst_;  // target pool
  Zfs zfs_;
  ArgvLog log_;
  LocalReplicator replicator_{zfs_, zfs_};
};

}  // namespace zps::test
