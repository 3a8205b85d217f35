// The zfs(8) adapter: the one place in zpsend that runs `zfs` (and `zpool`).
//
// It validates every name before forming an argv, never uses a shell, returns errors
// as values carrying zfs's own stderr, and parses zfs's output in one place
// (zfs_parse.h, unit-tested with recorded output). It can form `zfs send` only as a
// full send or `-i FROM TO`: there is no way to ask it for `-I`.
//
// On zfs-fuse (pool version 23) `zfs list` has no -p and `zfs get` has no -t, so
// listings use `zfs get -Hp -d 1`; where the capability probe finds the OpenZFS forms
// they are used instead.
//
// Thread-safety: a Zfs may be shared by threads; the capability probe runs once, under
// a mutex, on first use. Call set_observer / set_command_timeout before sharing it.
// Every call spawns its own processes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/mount_guard.h"
#include "shared/plan.h"
#include "shared/process.h"
#include "shared/status.h"

namespace zps {

struct ZfsCapabilities {
  bool list_parsable = false;  // zfs list -p
  bool get_type_filter = false;  // zfs get -t snapshot
  bool resume_tokens = false;  // zfs recv -s / receive_resume_token
  bool bookmarks = false;
  bool holds = false;
  bool send_estimate = false;  // zfs send -n -P
  bool recv_no_mount = false;  // zfs recv -u
};

struct DatasetInfo {
  std::string name;                   // "pool/a/b"
  std::string type;                   // "filesystem" | "volume"
  std::optional<std::string> origin;  // "pool/base@s1" for clones
};

struct PoolInfo {
  std::string name;
  uint64_t free_bytes = 0;
};

// What to send: a full stream of `to`, or an incremental from `from` (a full snapshot
// name: the same dataset's earlier snapshot, or a clone's origin) to `to`.
struct SendSpec {
  std::optional<std::string> from;  // "pool/a@s1" or nullopt for a full send
  std::string to;                   // "pool/a@s2"
};

struct RecvSpec {
  std::string target;  // dataset to receive into
  bool force = false;  // -F: roll back / overwrite
  // The stream makes a dataset (a full stream, or a clone's first), which zfs recv then
  // mounts. false only for an incremental into the existing target: on zfs-fuse a
  // receive that may mount holds the host's MountGuard while it runs.
  bool may_mount = true;
};

class Zfs {
 public:
  // Called with every argv the adapter is about to run (tests record them; the agent
  // logs them).
  using ArgvObserver = std::function<void(const std::vector<std::string>&)>;

  explicit Zfs(std::string zfs_path = "zfs", std::string zpool_path = "zpool");
  Zfs(const Zfs&) = delete;
  Zfs& operator=(const Zfs&) = delete;

  void set_observer(ArgvObserver observer) { observer_ = std::move(observer); }
  // Timeout for the short listing commands (not for send/recv).
  void set_command_timeout(std::chrono::milliseconds t) { timeout_ = t; }

  // Probes once, then answers from the cache.
  const ZfsCapabilities& capabilities();

  // Snapshots of `dataset` (not of its children), ordered by createtxg.
  Result<std::vector<SnapshotVersion>> list_snapshots(std::string_view dataset);
  // `dataset` and every filesystem/volume below it, parents before children.
  Result<std::vector<DatasetInfo>> list_descendants(std::string_view dataset);
  Result<bool> exists(std::string_view dataset);
  // The origin snapshot's full name, or nullopt when the dataset is not a clone.
  Result<std::optional<std::string>> origin(std::string_view dataset);
  // guid of one dataset or snapshot.
  Result<uint64_t> guid(std::string_view name);
  // Every snapshot below `dataset` (recursive) with the given guid, by full name.
  Result<std::optional<std::string>> find_snapshot_by_guid(std::string_view dataset,
                                                           uint64_t guid);
  // Creates `dataset` unmounted (canmount=off), with missing parents created the same
  // way one by one (zfs-fuse's `create -p -o` sets options on the last one only).
  Status create_unmounted(std::string_view dataset);
  // Pools with their free bytes.
  Result<std::vector<PoolInfo>> pools();
  // Rolls the snapshot's dataset back to it, destroying the snapshots after it
  // (`zfs rollback -r`). A forced incremental receive needs this first: zfs-fuse's
  // `recv -F` refuses a target with snapshots after the stream's source ("most recent
  // snapshot of X does not match incremental source"); OpenZFS would destroy them itself.
  Status rollback(std::string_view snapshot);
  // One property's value (`zfs get -Hp -o value`), and setting it. Only properties in a
  // small allow-list (atime, readonly, canmount) can be set.
  Result<std::string> get_property(std::string_view dataset, std::string_view property);
  Status set_property(std::string_view dataset, std::string_view property, std::string_view value);

  // Starts `zfs send`; the stream is on the process's stdout.
  Result<std::unique_ptr<Process>> start_send(const SendSpec& spec);
  // Starts `zfs recv`; write the stream to the process's stdin. On zfs-fuse a receive
  // that may mount first waits (up to the command timeout) for the host's MountGuard,
  // which the zfs recv process then holds until it exits.
  Result<std::unique_ptr<Process>> start_recv(const RecvSpec& spec);

  // The argv start_send / start_recv would run (validated), for logs and tests.
  Result<std::vector<std::string>> send_argv(const SendSpec& spec) const;
  Result<std::vector<std::string>> recv_argv(const RecvSpec& spec) const;

 private:
  // Runs `zfs ARGS`; a non-zero exit becomes an error (kNotFound when zfs says the
  // dataset does not exist, else kZfsFailed), prefixed with `what`.
  Result<RunOutput> run_zfs(std::vector<std::string> args, std::string_view what);
  Result<RunOutput> run_tool(const std::string& tool, std::vector<std::string> args,
                             std::string_view what);
  // Like run_tool, but a non-zero exit is not an error (the probe reads usage texts).
  Result<RunOutput> run_raw(const std::string& tool, std::vector<std::string> args,
                            std::string_view what);
  ZfsCapabilities probe();
  // The host's MountGuard where this zfs is zfs-fuse (no `recv -u`), else an empty one.
  Result<MountGuard> guard_mounts();
  void observe(const std::vector<std::string>& argv);

  std::string zfs_path_;
  std::string zpool_path_;
  ArgvObserver observer_;
  std::chrono::milliseconds timeout_{std::chrono::seconds(120)};
  std::mutex probe_mu_;
  std::optional<ZfsCapabilities> caps_;
};

// Makes a Status of kZfsFailed from a failed command: "<what>: <zfs's stderr>".
Status zfs_error(std::string_view what, const RunOutput& output);

}  // namespace zps
