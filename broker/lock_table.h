// The cluster-wide dataset locks.
//
// A lock is keyed by (agent, dataset). Two locks conflict when they are on the same
// agent and name the same dataset, or when one dataset lies below the other and either
// lock is recursive (DESIGN.md, "Locks").
// Every acquisition gets a fencing token from a monotonically
// increasing counter; receivers refuse a prepare whose token is older than the newest
// they have seen for a dataset, so a job that lost its lock cannot write any more.
//
// The table is in memory; the broker persists every change through its Store and
// restores the table at start.
//
// Thread-safety: not thread-safe; owned by the broker's loop thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shared/protocol.h"
#include "shared/status.h"

namespace zps::broker {

struct Lock {
  std::string agent;
  std::string dataset;
  bool recursive = false;
  uint64_t job = 0;
  uint64_t fence = 0;
};

class LockTable {
 public:
  // Takes a lock for `job`. On conflict: kLockHeld, with a message naming the dataset,
  // the job that holds the conflicting lock and what it locks, and what to do
  // ("wait for job 12 to end or cancel it with zpsctl cancel 12").
  Result<Lock> acquire(const std::string& agent, const std::string& dataset, bool recursive,
                       uint64_t job);
  // Releases every lock of `job`; returns what was released.
  std::vector<Lock> release_job(uint64_t job);
  // True when `job` holds a lock that covers (agent, dataset): the same dataset, or an
  // ancestor locked recursively.
  bool covers(uint64_t job, const std::string& agent, const std::string& dataset) const;

  std::vector<Lock> list() const { return locks_; }
  std::vector<Lock> locks_of(uint64_t job) const;

  // Restores persisted state: the locks, and the next fence to hand out.
  void restore(std::vector<Lock> locks, uint64_t next_fence);
  uint64_t next_fence() const { return next_fence_; }

  static proto::LockInfo to_info(const Lock& lock);

 private:
  std::vector<Lock> locks_;
  uint64_t next_fence_ = 1;
};

}  // namespace zps::broker
