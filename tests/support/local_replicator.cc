#include "tests/support/local_replicator.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "shared/names.h"
#include "shared/process.h"
#include "shared/zfs.h"

namespace zps::test {

Status pump_stream(int from, int to, uint64_t* bytes) {
  std::vector<char> buf(256 * 1024);
  while (true) {
    ssize_t n = ::read(from, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status(Code::kIoError, "reading the zfs send stream failed");
    if (n == 0) return Status::Ok();
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(to, buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Status(Code::kIoError, "zfs recv stopped reading the stream");
      off += w;
    }
    *bytes += static_cast<uint64_t>(n);
  }
}

namespace {

SendSpec send_spec(const HopPlan& plan, const std::string& source) {
  SendSpec spec;
  spec.to = source + "@" + plan.to;
  if (plan.kind == HopKind::kIncremental) spec.from = source + "@" + plan.from;
  if (plan.kind == HopKind::kCloneIncremental) spec.from = plan.from;
  return spec;
}

std::string pool_of(const std::string& dataset) { return dataset.substr(0, dataset.find('/')); }

}  // namespace

LocalReplicator::LocalReplicator(Zfs& source, Zfs& target) : source_(source), target_(target) {
  ::signal(SIGPIPE, SIG_IGN);
}

Result<SourceView> LocalReplicator::source_view(const std::string& dataset) {
  SourceView view;
  view.dataset = dataset;
  Result<std::vector<SnapshotVersion>> snaps = source_.list_snapshots(dataset);
  if (!snaps.ok()) return snaps.status();
  view.snapshots = std::move(snaps).value();
  Result<std::optional<std::string>> origin = source_.origin(dataset);
  if (!origin.ok()) return origin.status();
  if (*origin) {
    auto [ds, snap] = split_snapshot(**origin);
    Result<uint64_t> guid = source_.guid(**origin);
    if (!guid.ok()) return guid.status();
    view.origin = OriginRef{std::string(ds), std::string(snap), *guid};
  }
  return view;
}

Result<TargetView> LocalReplicator::target_view(const std::string& dataset,
                                                const SourceView& source,
                                                const std::string& origin_search_root) {
  TargetView view;
  view.dataset = dataset;
  Result<bool> exists = target_.exists(dataset);
  if (!exists.ok()) return exists.status();
  view.exists = *exists;
  if (view.exists) {
    Result<std::vector<SnapshotVersion>> snaps = target_.list_snapshots(dataset);
    if (!snaps.ok()) return snaps.status();
    view.snapshots = std::move(snaps).value();
  }
  if (source.origin) {
    const std::string root = origin_search_root.empty() ? pool_of(dataset) : origin_search_root;
    Result<std::optional<std::string>> found =
        target_.find_snapshot_by_guid(root, source.origin->guid);
    if (!found.ok()) return found.status();
    view.has_origin = found->has_value();
  }
  return view;
}

Result<LocalReplicationResult> LocalReplicator::replicate(const std::string& source_dataset,
                                                          const std::string& target_dataset,
                                                          const LocalReplicationOptions& options) {
  LocalReplicationResult result;
  PlanOptions plan_options;
  plan_options.force = options.force;
  for (size_t index = 0; index <= options.max_hops; ++index) {
    Result<SourceView> source = source_view(source_dataset);
    if (!source.ok()) return source.status();
    Result<TargetView> target = target_view(target_dataset, *source, options.origin_search_root);
    if (!target.ok()) return target.status();
    Result<HopPlan> plan = plan_next_hop(*source, *target, plan_options);
    if (!plan.ok()) return plan.status();
    for (const std::string& w : plan->warnings) {
      if (std::find(result.warnings.begin(), result.warnings.end(), w) == result.warnings.end()) {
        result.warnings.push_back(w);
      }
    }
    if (plan->kind == HopKind::kUpToDate) return result;
    ZPS_RETURN_IF_ERROR(run_hop(*plan, *source, *target, &result.bytes));
    result.hops.push_back(*plan);
    if (options.after_hop) options.after_hop(*plan, index);
  }
  return Status(Code::kInternal, "replicating " + source_dataset + " to " + target_dataset +
                                     " did not converge within " +
                                     std::to_string(options.max_hops) + " hops");
}

// zfs-fuse's `recv -F` does not destroy target snapshots after the stream's source: the
// receiver rolls back to the common snapshot (found by guid) itself.
Status LocalReplicator::roll_back_to_common(const HopPlan& plan, const SourceView& source,
                                            const TargetView& target) {
  auto common = std::find_if(source.snapshots.begin(), source.snapshots.end(),
                             [&](const SnapshotVersion& s) { return s.name == plan.from; });
  if (common == source.snapshots.end()) {
    return Status(Code::kInternal, "planned from @" + plan.from + ", which the source lacks");
  }
  auto on_target = std::find_if(target.snapshots.begin(), target.snapshots.end(),
                                [&](const SnapshotVersion& s) { return s.guid == common->guid; });
  if (on_target == target.snapshots.end()) {
    return Status(Code::kInternal, "the target lacks the common snapshot @" + plan.from);
  }
  return target_.rollback(target.dataset + "@" + on_target->name);
}

Status LocalReplicator::run_hop(const HopPlan& plan, const SourceView& source,
                                const TargetView& target, uint64_t* bytes) {
  const std::string hop = "hop " + describe(plan) + " of " + source.dataset + " to " +
                          target.dataset;
  if (!target.exists) {
    std::string parent(parent_dataset(target.dataset));
    if (!parent.empty()) ZPS_RETURN_IF_ERROR(target_.create_unmounted(parent).with_context(hop));
  }
  if (plan.force_receive && plan.kind == HopKind::kIncremental) {
    ZPS_RETURN_IF_ERROR(roll_back_to_common(plan, source, target).with_context(hop));
  }
  Result<std::unique_ptr<Process>> recv =
      target_.start_recv(RecvSpec{target.dataset, plan.force_receive});
  if (!recv.ok()) return recv.status().with_context(hop);
  Result<std::unique_ptr<Process>> send = source_.start_send(send_spec(plan, source.dataset));
  if (!send.ok()) return send.status().with_context(hop);

  Status pumped = pump_stream((*send)->stdout_fd(), (*recv)->stdin_fd(), bytes);
  (*recv)->close_stdin();
  if (!pumped.ok()) (*send)->kill();
  ExitStatus recv_status = (*recv)->wait();
  ExitStatus send_status = (*send)->wait();
  if (!send_status.ok() || !recv_status.ok()) {
    return Status(Code::kZfsFailed, hop + ": zfs send " + send_status.describe() + " (" +
                                        (*send)->stderr_text() + "), zfs recv " +
                                        recv_status.describe() + " (" + (*recv)->stderr_text() +
                                        ")");
  }
  Result<uint64_t> guid = target_.guid(target.dataset + "@" + plan.to);
  if (!guid.ok()) return guid.status().with_context(hop);
  if (*guid != plan.to_guid) {
    return Status(Code::kInternal, hop + ": the target's @" + plan.to + " has guid " +
                                       std::to_string(*guid) + ", the source's " +
                                       std::to_string(plan.to_guid));
  }
  return Status::Ok();
}

void ReplicationTest::SetUp() {
  ZfsTest::SetUp();
  if (IsSkipped() || HasFatalFailure()) return;
  src_ = create_pool("src");
  dst_ = create_pool("dst");
  log_.attach(zfs_);
}

void ReplicationTest::TearDown() {
  for (const auto& argv : log_.containing("-I")) {
    ADD_FAILURE() << "the adapter ran a range send: " << format_argv(argv);
  }
  ZfsTest::TearDown();
}

std::vector<std::string> ReplicationTest::snapshot_names(const std::string& dataset) {
  std::vector<std::string> names;
  for (const SnapshotVersion& s : snapshots(dataset)) names.push_back(s.name);
  return names;
}

void ReplicationTest::expect_same_snapshots(const std::string& source, const std::string& target) {
  std::vector<SnapshotVersion> a = snapshots(source);
  std::vector<SnapshotVersion> b = snapshots(target);
  ASSERT_EQ(a.size(), b.size()) << "source and target have different numbers of snapshots";
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name) << "snapshot " << i;
    EXPECT_EQ(a[i].guid, b[i].guid) << "snapshot @" << a[i].name << " has another guid";
  }
}

void ArgvLog::attach(Zfs& zfs) {
  zfs.set_observer([this](const std::vector<std::string>& argv) {
    std::lock_guard<std::mutex> lock(mu_);
    argvs_.push_back(argv);
  });
}

std::vector<std::vector<std::string>> ArgvLog::all() const {
  std::lock_guard<std::mutex> lock(mu_);
  return argvs_;
}

std::vector<std::vector<std::string>> ArgvLog::of(std::string_view subcommand) const {
  std::vector<std::vector<std::string>> out;
  for (auto& argv : all()) {
    if (argv.size() > 1 && argv[1] == subcommand) out.push_back(argv);
  }
  return out;
}

std::vector<std::vector<std::string>> ArgvLog::containing(std::string_view arg) const {
  std::vector<std::vector<std::string>> out;
  for (auto& argv : all()) {
    if (std::find(argv.begin() + (argv.empty() ? 0 : 1), argv.end(), arg) != argv.end()) {
      out.push_back(argv);
    }
  }
  return out;
}

void ArgvLog::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  argvs_.clear();
}

}  // namespace zps::test
