#include "shared/zfs.h"

#include <set>

#include <utility>

#include "shared/names.h"
#include "shared/zfs_parse.h"

namespace zps {
namespace {

// zfs wraps its messages ("does not\nmatch incremental source"); one line reads better
// in a log and in an error reply.
std::string one_line(std::string_view text) {
  constexpr size_t kMaxMessage = 2000;
  std::string out;
  bool pending_space = false;
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
    if (out.size() >= kMaxMessage) break;
  }
  return out;
}

std::string trimmed(std::string_view text) {
  size_t end = text.find_last_not_of(" \t\r\n");
  return end == std::string_view::npos ? std::string() : std::string(text.substr(0, end + 1));
}

Status validate_any_name(std::string_view name) {
  return name.find('@') == std::string_view::npos ? validate_dataset_name(name)
                                                   : validate_snapshot_name(name);
}

template <typename T>
Result<T> in_context(Result<T> result, std::string_view what) {
  if (result.ok()) return result;
  return result.status().with_context(what);
}

}  // namespace

Status zfs_error(std::string_view what, const RunOutput& output) {
  std::string detail = one_line(output.err);
  if (detail.empty()) detail = "zfs ended with " + output.status.describe() + " and said nothing";
  return Status(Code::kZfsFailed, std::string(what) + ": " + detail);
}

Zfs::Zfs(std::string zfs_path, std::string zpool_path)
    : zfs_path_(std::move(zfs_path)), zpool_path_(std::move(zpool_path)) {}

void Zfs::observe(const std::vector<std::string>& argv) {
  if (observer_) observer_(argv);
}

Result<RunOutput> Zfs::run_raw(const std::string& tool, std::vector<std::string> args,
                               std::string_view what) {
  std::vector<std::string> argv;
  argv.reserve(args.size() + 1);
  argv.push_back(tool);
  for (std::string& a : args) argv.push_back(std::move(a));
  observe(argv);
  RunOptions options;
  options.timeout = timeout_;
  Result<RunOutput> out = run(argv, options);
  if (!out.ok()) return out.status().with_context(what);
  return out;
}

Result<RunOutput> Zfs::run_tool(const std::string& tool, std::vector<std::string> args,
                                std::string_view what) {
  Result<RunOutput> out = run_raw(tool, std::move(args), what);
  if (!out.ok() || out->status.ok()) return out;
  if (missing_dataset(out->err)) {
    return Status(Code::kNotFound, std::string(what) + ": " + one_line(out->err));
  }
  return zfs_error(what, *out);
}

Result<RunOutput> Zfs::run_zfs(std::vector<std::string> args, std::string_view what) {
  return run_tool(zfs_path_, std::move(args), what);
}

const ZfsCapabilities& Zfs::capabilities() {
  std::lock_guard<std::mutex> lock(probe_mu_);
  if (!caps_) caps_ = probe();
  return *caps_;
}

// Asks zfs for its usage (what it prints when run without a command) instead of
// trying the commands: nothing is created, nothing is listed.
ZfsCapabilities Zfs::probe() {
  Result<RunOutput> usage = run_raw(zfs_path_, {}, "probing zfs capabilities");
  if (!usage.ok()) return ZfsCapabilities{};
  Result<RunOutput> holds = run_raw(zfs_path_, {"holds"}, "probing zfs holds");
  std::string holds_text = holds.ok() ? holds->out + holds->err : "internal error";
  return parse_capabilities(usage->out + usage->err, holds_text);
}

Result<std::vector<SnapshotVersion>> Zfs::list_snapshots(std::string_view dataset) {
  ZPS_RETURN_IF_ERROR(validate_dataset_name(dataset));
  const std::string ds(dataset);
  const std::string what = "listing the snapshots of " + quote_name(dataset);
  if (capabilities().list_parsable) {
    Result<RunOutput> out = run_zfs({"list", "-Hp", "-t", "snapshot", "-d", "1", "-o",
                                     "name,guid,createtxg", "-s", "createtxg", ds},
                                    what);
    if (!out.ok()) return out.status();
    return in_context(parse_snapshot_list(dataset, out->out), what);
  }
  // zfs-fuse: no `list -p` (its guids would read "7.99E"), no `get -t`; -d 1 also
  // prints the dataset itself and its children, which the parser skips.
  Result<RunOutput> out =
      run_zfs({"get", "-Hp", "-d", "1", "-o", "name,property,value", "guid,createtxg", ds}, what);
  if (!out.ok()) return out.status();
  return in_context(parse_snapshot_properties(dataset, out->out), what);
}

Result<std::vector<DatasetInfo>> Zfs::list_descendants(std::string_view dataset) {
  ZPS_RETURN_IF_ERROR(validate_dataset_name(dataset));
  const std::string what = "listing the datasets below " + quote_name(dataset);
  Result<RunOutput> out = run_zfs(
      {"list", "-H", "-r", "-t", "filesystem,volume", "-o", "name,type,origin", std::string(dataset)},
      what);
  if (!out.ok()) return out.status();
  return in_context(parse_dataset_list(out->out), what);
}

Result<bool> Zfs::exists(std::string_view dataset) {
  ZPS_RETURN_IF_ERROR(validate_any_name(dataset));
  Result<RunOutput> out = run_zfs({"list", "-H", "-o", "name", std::string(dataset)},
                                  "checking whether " + quote_name(dataset) + " exists");
  if (out.ok()) return true;
  if (out.status().code() == Code::kNotFound) return false;
  return out.status();
}

Result<std::optional<std::string>> Zfs::origin(std::string_view dataset) {
  ZPS_RETURN_IF_ERROR(validate_dataset_name(dataset));
  Result<RunOutput> out = run_zfs({"get", "-Hp", "-o", "value", "origin", std::string(dataset)},
                                  "reading the origin of " + quote_name(dataset));
  if (!out.ok()) return out.status();
  std::string value = trimmed(out->out);
  if (value.empty() || value == "-") return std::optional<std::string>();
  return std::optional<std::string>(std::move(value));
}

Result<uint64_t> Zfs::guid(std::string_view name) {
  ZPS_RETURN_IF_ERROR(validate_any_name(name));
  const std::string what = "reading the guid of " + quote_name(name);
  Result<RunOutput> out = run_zfs({"get", "-Hp", "-o", "value", "guid", std::string(name)}, what);
  if (!out.ok()) return out.status();
  return in_context(parse_number(out->out), what);
}

Result<std::optional<std::string>> Zfs::find_snapshot_by_guid(std::string_view dataset,
                                                              uint64_t guid) {
  ZPS_RETURN_IF_ERROR(validate_dataset_name(dataset));
  const std::string ds(dataset);
  const std::string what = "looking for a snapshot with guid " + std::to_string(guid) +
                           " below " + quote_name(dataset);
  std::vector<std::string> args =
      capabilities().list_parsable
          ? std::vector<std::string>{"list", "-Hp", "-r", "-t", "snapshot", "-o", "name,guid", ds}
          : std::vector<std::string>{"get", "-Hp", "-r", "-o", "name,value", "guid", ds};
  Result<RunOutput> out = run_zfs(std::move(args), what);
  if (!out.ok()) return out.status();
  Result<std::vector<NamedValue>> values = parse_name_values(out->out);
  if (!values.ok()) return values.status().with_context(what);
  for (const NamedValue& v : *values) {
    if (v.value == guid && v.name.find('@') != std::string::npos) {
      return std::optional<std::string>(v.name);
    }
  }
  return std::optional<std::string>();
}

Status Zfs::create_unmounted(std::string_view dataset) {
  ZPS_RETURN_IF_ERROR(validate_dataset_name(dataset));
  for (size_t end = dataset.find('/'); ; end = dataset.find('/', end + 1)) {
    std::string prefix(dataset.substr(0, end));
    Result<bool> there = exists(prefix);
    if (!there.ok()) return there.status();
    if (!*there) {
      if (prefix.find('/') == std::string::npos) {
        return Status(Code::kNotFound, "cannot create " + quote_name(dataset) + ": pool " +
                                           quote_name(prefix) + " does not exist");
      }
      Result<RunOutput> out = run_zfs({"create", "-o", "canmount=off", prefix},
                                      "creating " + quote_name(prefix));
      // Another receive may have created it meanwhile; that is as good.
      if (!out.ok()) {
        Result<bool> now = exists(prefix);
        if (!now.ok() || !*now) return out.status();
      }
    }
    if (end == std::string_view::npos) return Status::Ok();
  }
}

Result<std::vector<PoolInfo>> Zfs::pools() {
  Result<RunOutput> names =
      run_tool(zpool_path_, {"list", "-H", "-o", "name,health"}, "listing pools");
  if (!names.ok()) return names.status();
  std::vector<std::string> args = {"get", "-Hp", "-o", "name,value", "available"};
  const size_t fixed = args.size();
  // A faulted or unavailable pool has no root dataset to ask: asking would fail the whole
  // listing, so one sick pool (perhaps nothing to do with zpsend) would hide the rest.
  for (std::string& name : usable_pools(names->out)) args.push_back(std::move(name));
  std::vector<PoolInfo> pools;
  if (args.size() == fixed) return pools;
  const std::string what = "reading the free space of the pools";
  Result<RunOutput> out = run_zfs(std::move(args), what);
  if (!out.ok()) return out.status();
  Result<std::vector<NamedValue>> values = parse_name_values(out->out);
  if (!values.ok()) return values.status().with_context(what);
  for (NamedValue& v : *values) pools.push_back({std::move(v.name), v.value});
  return pools;
}

Result<MountGuard> Zfs::guard_mounts() {
  if (capabilities().recv_no_mount) return MountGuard();
  return MountGuard::acquire(kMountLockPath, timeout_);
}

Status Zfs::rollback(std::string_view snapshot) {
  ZPS_RETURN_IF_ERROR(validate_snapshot_name(snapshot));
  // zfs-fuse may unmount and mount the dataset again around a rollback.
  Result<MountGuard> mounts = guard_mounts();
  if (!mounts.ok()) return mounts.status();
  Result<RunOutput> out = run_zfs({"rollback", "-r", std::string(snapshot)},
                                  "rolling back to " + quote_name(snapshot));
  return out.status();
}

Result<std::string> Zfs::get_property(std::string_view dataset, std::string_view property) {
  ZPS_RETURN_IF_ERROR(validate_dataset_name(dataset));
  static const std::set<std::string_view> kReadable = {"atime", "readonly", "canmount",
                                                       "mountpoint", "available", "used"};
  if (!kReadable.count(property)) {
    return Status(Code::kInvalidArgument, "property " + quote_name(property) + " is not readable here");
  }
  Result<RunOutput> out = run_zfs({"get", "-Hp", "-o", "value", std::string(property),
                                   std::string(dataset)},
                                  "reading " + std::string(property) + " of " + quote_name(dataset));
  if (!out.ok()) return out.status();
  std::string v = out->out;
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
  return v;
}

Status Zfs::set_property(std::string_view dataset, std::string_view property, std::string_view value) {
  ZPS_RETURN_IF_ERROR(validate_dataset_name(dataset));
  static const std::set<std::string_view> kSettable = {"atime", "readonly", "canmount"};
  static const std::set<std::string_view> kValues = {"on", "off", "noauto"};
  if (!kSettable.count(property) || !kValues.count(value)) {
    return Status(Code::kInvalidArgument, "refusing to set " + quote_name(property) + "=" +
                                              quote_name(value));
  }
  std::string assignment = std::string(property) + "=" + std::string(value);
  return run_zfs({"set", assignment, std::string(dataset)},
                 "setting " + assignment + " on " + quote_name(dataset))
      .status();
}

Result<std::vector<std::string>> Zfs::send_argv(const SendSpec& spec) const {
  ZPS_RETURN_IF_ERROR(validate_snapshot_name(spec.to));
  std::vector<std::string> argv = {zfs_path_, "send"};
  if (spec.from) {
    ZPS_RETURN_IF_ERROR(validate_snapshot_name(*spec.from));
    if (*spec.from == spec.to) {
      return Status(Code::kInvalidArgument, "cannot send from " + quote_name(spec.to) +
                                                " to itself: an incremental needs an earlier "
                                                "snapshot");
    }
    argv.push_back("-i");  // one snapshot pair per stream: never -I
    argv.push_back(*spec.from);
  }
  argv.push_back(spec.to);
  return argv;
}

Result<std::vector<std::string>> Zfs::recv_argv(const RecvSpec& spec) const {
  ZPS_RETURN_IF_ERROR(validate_dataset_name(spec.target));
  std::vector<std::string> argv = {zfs_path_, "recv"};
  if (spec.force) argv.push_back("-F");
  argv.push_back(spec.target);
  return argv;
}

Result<std::unique_ptr<Process>> Zfs::start_send(const SendSpec& spec) {
  Result<std::vector<std::string>> argv = send_argv(spec);
  if (!argv.ok()) return argv.status();
  observe(*argv);
  SpawnOptions options;
  options.pipe_stdout = true;
  return in_context(Process::spawn(*argv, options), "starting zfs send of " + quote_name(spec.to));
}

Result<std::unique_ptr<Process>> Zfs::start_recv(const RecvSpec& spec) {
  Result<std::vector<std::string>> argv = recv_argv(spec);
  if (!argv.ok()) return argv.status();
  observe(*argv);
  Result<MountGuard> mounts = MountGuard();
  if (spec.may_mount) mounts = guard_mounts();
  if (!mounts.ok()) return mounts.status().with_context("receiving into " + quote_name(spec.target));
  SpawnOptions options;
  options.pipe_stdin = true;
  options.pass_fd = mounts->fd();  // the lock lasts as long as zfs recv
  return in_context(Process::spawn(*argv, options),
                    "starting zfs recv into " + quote_name(spec.target));
}

}  // namespace zps
