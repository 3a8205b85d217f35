// The replication planner: decides the next single hop that brings a target closer to
// its source. Pure: snapshot lists in, one decision out; no I/O, no clocks, no zfs.
//
// The sender calls plan_next_hop() before every hop with a fresh listing of the source,
// so a snapshot destroyed on the source mid-sync is simply not in the next listing
// and the plan takes the one after it, and snapshots created mid-sync are picked up.
// Snapshots are matched by guid, never by name. A hop is always one snapshot pair
// (`zfs send -i A B`): the planner has no way to express a range (-I).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shared/status.h"

namespace zps {

// One snapshot as listed: the short name (after '@'), its guid and createtxg.
struct SnapshotVersion {
  std::string name;
  uint64_t guid = 0;
  uint64_t createtxg = 0;
};

// The snapshot a clone was created from, as seen on the source.
struct OriginRef {
  std::string dataset;   // "pool/base"
  std::string snapshot;  // "s1"
  uint64_t guid = 0;
  std::string full_name() const { return dataset + "@" + snapshot; }
};

struct SourceView {
  std::string dataset;                     // for messages
  std::vector<SnapshotVersion> snapshots;  // in any order; the planner sorts by createtxg
  std::optional<OriginRef> origin;         // set when the source is a clone
};

struct TargetView {
  std::string dataset;  // for messages
  bool exists = false;
  std::vector<SnapshotVersion> snapshots;  // meaningful when exists
  // Whether the target side holds a snapshot with the origin's guid (only asked when
  // the source is a clone).
  bool has_origin = false;
};

struct PlanOptions {
  // Allow `zfs recv -F`: roll back snapshots the target has after the last common one,
  // or overwrite an existing target that has no snapshots. Never used to overwrite a
  // diverged target.
  bool force = false;
};

enum class HopKind {
  kUpToDate,          // nothing to send
  kFull,              // zfs send SRC@to
  kIncremental,       // zfs send -i SRC@from SRC@to
  kCloneIncremental,  // zfs send -i ORIGIN@snap SRC@to  (target arrives as a clone)
};

struct HopPlan {
  HopKind kind = HopKind::kUpToDate;
  // kIncremental: short name of the common snapshot. kCloneIncremental: the origin's
  // full name on the source ("pool/base@s1"). Otherwise empty.
  std::string from;
  std::string to;            // short name of the snapshot this hop delivers
  uint64_t to_guid = 0;      // its guid, to check what the receiver reports
  // guid of `from` (the common snapshot, or the origin); 0 for a full send. With
  // force_receive the receiver rolls the target back to it first.
  uint64_t from_guid = 0;
  bool force_receive = false;  // run zfs recv with -F
  // Hops still needed including this one, counted on the current listing (for
  // "hop n of m"); 0 when up to date.
  size_t remaining = 0;
  std::vector<std::string> warnings;  // e.g. a clone sent as a full copy
};

// Errors: kNoSnapshots (source has none), kDiverged (no common snapshot but the target
// has snapshots; refused even with force), kTargetNewer (target has snapshots after the
// last common one; refused without force), kRefused (target exists with no snapshots,
// without force). Messages name the datasets and say what the user can do.
//
// The common snapshot is the newest target snapshot (by the target's createtxg) whose
// guid the source has; `from` is its name on the source, so a rename on either side
// does not matter. Both listings are ordered by createtxg, ties in listing order; a
// guid listed twice on the source counts once (the first entry). With force, a target
// that has extra snapshots but nothing left to receive is reported up to date with a
// warning: no stream is left to carry the -F rollback, and the planner never
// invents a zfs rollback.
Result<HopPlan> plan_next_hop(const SourceView& source, const TargetView& target,
                              const PlanOptions& options);

// "full @now", "-i @now @now2", "-i pool/base@s1 @c1", "up to date".
std::string describe(const HopPlan& plan);

}  // namespace zps
