#include "shared/plan.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace zps {
namespace {

using Snapshots = std::vector<SnapshotVersion>;

// A target can pile up thousands of snapshots; an error message lists only this many.
constexpr size_t kMaxListedNames = 10;

// Creation order, which is the only order zfs send -i cares about: names like "8550"
// and "4387" say nothing about it. Stable, so equal createtxgs keep the listing order.
Snapshots in_creation_order(Snapshots snapshots) {
  std::stable_sort(snapshots.begin(), snapshots.end(),
                   [](const SnapshotVersion& a, const SnapshotVersion& b) {
                     return a.createtxg < b.createtxg;
                   });
  return snapshots;
}

// A guid names one snapshot; a listing that repeats one is broken. The first entry
// listed wins so the plan stays deterministic instead of sending the same data twice.
Snapshots without_repeated_guids(const Snapshots& snapshots) {
  Snapshots unique;
  std::unordered_set<uint64_t> seen;
  for (const auto& s : snapshots) {
    if (seen.insert(s.guid).second) unique.push_back(s);
  }
  return unique;
}

std::string at_names(const Snapshots& snapshots, size_t begin) {
  std::string out;
  size_t listed = 0;
  for (size_t i = begin; i < snapshots.size() && listed < kMaxListedNames; ++i, ++listed) {
    if (!out.empty()) out += ", ";
    out += "@" + snapshots[i].name;
  }
  size_t total = snapshots.size() - begin;
  if (total > listed) out += " and " + std::to_string(total - listed) + " more";
  return out;
}

HopPlan hop(HopKind kind, std::string from, const SnapshotVersion& to, size_t remaining,
            bool force_receive) {
  HopPlan plan;
  plan.kind = kind;
  plan.from = std::move(from);
  plan.to = to.name;
  plan.to_guid = to.guid;
  plan.remaining = remaining;
  plan.force_receive = force_receive;
  return plan;
}

std::string clone_as_copy_warning(const SourceView& source, const TargetView& target) {
  return "origin " + source.origin->full_name() + " of clone " + source.dataset +
         " is not on the target, so " + target.dataset +
         " arrives as a full, independent copy; replicate " + source.origin->dataset +
         " to the target first to keep it a clone";
}

Status no_snapshots(const SourceView& source) {
  return Status(Code::kNoSnapshots,
                "source " + source.dataset +
                    " has no snapshots, so there is nothing to send; create one first "
                    "(zfs snapshot " + source.dataset + "@<name>) and run again");
}

Status empty_target_refused(const SourceView& source, const TargetView& target,
                            const SnapshotVersion& first) {
  return Status(Code::kRefused,
                "target " + target.dataset +
                    " exists but has no snapshots, so it shares nothing with source " +
                    source.dataset + "; run with --force to overwrite it with a full "
                    "receive of @" + first.name + " (zfs recv -F), or choose another target");
}

Status diverged(const SourceView& source, const TargetView& target) {
  return Status(Code::kDiverged,
                "target " + target.dataset + " has snapshots but none in common with source " +
                    source.dataset + " (matched by guid, not name); refusing to overwrite "
                    "it, even with --force. For a fresh copy, destroy or rename the target "
                    "yourself (zfs destroy -r " + target.dataset + ", or zfs rename " +
                    target.dataset + " <new name>) and run again");
}

std::string common_label(const SnapshotVersion& on_target, const SnapshotVersion& on_source) {
  std::string label = "@" + on_target.name;
  if (on_source.name != on_target.name) label += ", @" + on_source.name + " on the source";
  return label;
}

Status target_newer(const TargetView& target, const Snapshots& target_snaps,
                    size_t common_t, const SnapshotVersion& common_on_source) {
  return Status(Code::kTargetNewer,
                "target " + target.dataset + " has snapshots newer than the last common one (" +
                    common_label(target_snaps[common_t], common_on_source) +
                    "): " + at_names(target_snaps, common_t + 1) +
                    "; run with --force to roll them back (zfs recv -F), or keep them by "
                    "replicating to another target");
}

// The target does not exist: the first hop creates it, from the origin when the
// receiver can make it a clone again, else as a full stream.
HopPlan plan_for_missing_target(const SourceView& source, const TargetView& target,
                                const Snapshots& snaps) {
  const SnapshotVersion& first = snaps.front();
  if (source.origin && target.has_origin) {
    HopPlan plan = hop(HopKind::kCloneIncremental, source.origin->full_name(), first, snaps.size(),
                       false);
    plan.from_guid = source.origin->guid;
    return plan;
  }
  HopPlan plan = hop(HopKind::kFull, "", first, snaps.size(), false);
  if (source.origin) plan.warnings.push_back(clone_as_copy_warning(source, target));
  return plan;
}

Result<HopPlan> plan_for_empty_target(const SourceView& source, const TargetView& target,
                                      const Snapshots& snaps, const PlanOptions& options) {
  if (!options.force) return empty_target_refused(source, target, snaps.front());
  HopPlan plan = hop(HopKind::kFull, "", snaps.front(), snaps.size(), true);
  if (source.origin) plan.warnings.push_back(clone_as_copy_warning(source, target));
  return plan;
}

// Index of the newest target snapshot the source also has, by guid.
std::optional<size_t> newest_common(const Snapshots& target_snaps,
                                    const std::unordered_map<uint64_t, size_t>& source_index) {
  for (size_t i = target_snaps.size(); i-- > 0;) {
    if (source_index.count(target_snaps[i].guid)) return i;
  }
  return std::nullopt;
}

Result<HopPlan> plan_from_common(const SourceView& source, const TargetView& target,
                                 const Snapshots& snaps, const PlanOptions& options) {
  std::unordered_map<uint64_t, size_t> source_index;
  for (size_t i = 0; i < snaps.size(); ++i) source_index.emplace(snaps[i].guid, i);

  const Snapshots target_snaps = in_creation_order(target.snapshots);
  std::optional<size_t> common_t = newest_common(target_snaps, source_index);
  if (!common_t) return diverged(source, target);

  const size_t common_s = source_index.at(target_snaps[*common_t].guid);
  const bool target_has_newer = *common_t + 1 < target_snaps.size();
  if (target_has_newer && !options.force) {
    return target_newer(target, target_snaps, *common_t, snaps[common_s]);
  }

  const size_t remaining = snaps.size() - common_s - 1;
  if (remaining == 0) {
    HopPlan plan;  // up to date
    // There is no stream to carry a -F rollback, so the extra snapshots stay.
    if (target_has_newer) {
      plan.warnings.push_back(
          "target " + target.dataset + " keeps snapshots newer than the last common one (" +
          common_label(target_snaps[*common_t], snaps[common_s]) + "): " +
          at_names(target_snaps, *common_t + 1) +
          "; there is nothing new to send to roll them back with; remove them with zfs "
          "rollback -r " + target.dataset + "@" + target_snaps[*common_t].name);
    }
    return plan;
  }
  HopPlan plan = hop(HopKind::kIncremental, snaps[common_s].name, snaps[common_s + 1], remaining,
                     target_has_newer);
  plan.from_guid = snaps[common_s].guid;
  return plan;
}

}  // namespace

Result<HopPlan> plan_next_hop(const SourceView& source, const TargetView& target,
                              const PlanOptions& options) {
  const Snapshots snaps = in_creation_order(without_repeated_guids(source.snapshots));
  if (snaps.empty()) return no_snapshots(source);
  if (!target.exists) return plan_for_missing_target(source, target, snaps);
  if (target.snapshots.empty()) return plan_for_empty_target(source, target, snaps, options);
  return plan_from_common(source, target, snaps, options);
}

std::string describe(const HopPlan& plan) {
  std::string out;
  switch (plan.kind) {
    case HopKind::kUpToDate:
      out = "up to date";
      break;
    case HopKind::kFull:
      out = "full @" + plan.to;
      break;
    case HopKind::kIncremental:
      out = "-i @" + plan.from + " @" + plan.to;
      break;
    case HopKind::kCloneIncremental:
      out = "-i " + plan.from + " @" + plan.to;
      break;
  }
  if (plan.force_receive) out += " (-F)";
  return out;
}

}  // namespace zps
