#include "broker/lock_table.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "shared/names.h"

namespace zps::broker {
namespace {

// A plain lock protects one dataset; a recursive one its whole subtree. Two locks on
// the same agent therefore collide when they share a dataset, or when one subtree
// contains the other's dataset and that subtree is locked as a whole.
bool conflicts(const Lock& held, const std::string& agent, const std::string& dataset,
               bool recursive) {
  if (held.agent != agent) return false;
  if (held.dataset == dataset) return true;
  if (!held.recursive && !recursive) return false;
  return is_same_or_below(dataset, held.dataset) || is_same_or_below(held.dataset, dataset);
}

std::string describe(const std::string& agent, const std::string& dataset) {
  return agent + ":" + dataset;
}

Status lock_held(const Lock& held, const std::string& agent, const std::string& dataset,
                 bool recursive) {
  const std::string job = std::to_string(held.job);
  return Status(Code::kLockHeld,
                "target " + describe(agent, dataset) + (recursive ? " (with its descendants)" : "") +
                    " is locked by job " + job + " (which holds " +
                    describe(held.agent, held.dataset) + (held.recursive ? " recursively" : "") +
                    "); wait for job " + job + " to end, or cancel it with: zpsctl cancel " + job);
}

}  // namespace

Result<Lock> LockTable::acquire(const std::string& agent, const std::string& dataset,
                                bool recursive, uint64_t job) {
  for (const Lock& held : locks_) {
    if (held.job != job && conflicts(held, agent, dataset, recursive)) {
      return lock_held(held, agent, dataset, recursive);
    }
  }
  Lock lock{agent, dataset, recursive, job, next_fence_++};
  locks_.push_back(lock);
  return lock;
}

std::vector<Lock> LockTable::release_job(uint64_t job) {
  std::vector<Lock> released = locks_of(job);
  std::erase_if(locks_, [job](const Lock& l) { return l.job == job; });
  return released;
}

bool LockTable::covers(uint64_t job, const std::string& agent,
                       const std::string& dataset) const {
  return std::any_of(locks_.begin(), locks_.end(), [&](const Lock& l) {
    if (l.job != job || l.agent != agent) return false;
    return l.dataset == dataset || (l.recursive && is_same_or_below(dataset, l.dataset));
  });
}

std::vector<Lock> LockTable::locks_of(uint64_t job) const {
  std::vector<Lock> out;
  std::copy_if(locks_.begin(), locks_.end(), std::back_inserter(out),
               [job](const Lock& l) { return l.job == job; });
  return out;
}

void LockTable::restore(std::vector<Lock> locks, uint64_t next_fence) {
  locks_ = std::move(locks);
  // Never hand out a fence a receiver may already have seen, even if the persisted
  // counter lags behind the persisted locks (each is its own write).
  for (const Lock& l : locks_) next_fence = std::max(next_fence, l.fence + 1);
  next_fence_ = std::max<uint64_t>(next_fence, 1);
}

proto::LockInfo LockTable::to_info(const Lock& lock) {
  proto::LockInfo info;
  info.agent = lock.agent;
  info.dataset = lock.dataset;
  info.recursive = lock.recursive;
  info.job = lock.job;
  info.fence = lock.fence;
  return info;
}

}  // namespace zps::broker
