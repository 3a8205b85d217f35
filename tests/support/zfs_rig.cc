#include "tests/support/zfs_rig.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "shared/mount_guard.h"
#include "shared/process.h"

namespace zps::test {
namespace {

namespace fs = std::filesystem;

constexpr char kHowToGetZfs[] =
    "To get it: run scripts/setup (installs zfs-fuse), then run the tests with scripts/test, "
    "which starts the zfs-fuse daemon (or start it yourself as root: zfs-fuse --pidfile "
    "/run/zfs-fuse.pid).";

// Pools this process created, so cleanup_leftovers() never mistakes one of ours for a
// leftover of an earlier process that had the same pid.
std::mutex registry_mu;
std::set<std::string>& registry() {
  static std::set<std::string> pools;
  return pools;
}

std::atomic<unsigned> pool_counter{0};

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::optional<uint64_t> to_u64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Commands that may mount a dataset: on zfs-fuse they hold the host's MountGuard, as the
// agents' receives do, since two mounts at once can wedge the daemon (mount_guard.h).
bool may_mount(const std::string& tool, const std::vector<std::string>& args) {
  static const std::set<std::string> kZpool = {"create", "import"};
  static const std::set<std::string> kZfs = {"create", "clone",   "mount",  "recv",   "receive",
                                             "rollback", "rename", "promote", "set", "inherit"};
  if (args.empty()) return false;
  return (tool == "zpool" ? kZpool : kZfs).count(args[0]) > 0;
}

Result<std::string> run_tool(const std::string& tool, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {tool};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  Result<MountGuard> mounts = MountGuard();
  if (may_mount(tool, args)) mounts = MountGuard::acquire(kMountLockPath, options.timeout);
  if (!mounts.ok()) return mounts.status().with_context(format_argv(argv));
  Result<RunOutput> out = run(argv, options);
  if (!out.ok()) return out.status().with_context(format_argv(argv));
  if (!out->status.ok()) {
    return Status(Code::kZfsFailed, format_argv(argv) + ": " + trimmed(out->err) + " (" +
                                        out->status.describe() + ")");
  }
  return out->out;
}

std::string temp_root() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

// A zombie counts as gone: a crashed test whose parent has not reaped it yet left its
// pools behind all the same.
bool process_alive(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  size_t paren = line.rfind(')');  // the command name may contain spaces
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

// The creator's pid in "zpst-<pid>-..." (pools and directories alike).
std::optional<pid_t> rig_pid(std::string_view name) {
  const std::string prefix = std::string(kRigPrefix) + "-";
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  name.remove_prefix(prefix.size());
  size_t dash = name.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  std::optional<uint64_t> pid = to_u64(name.substr(0, dash));
  if (!pid || *pid == 0) return std::nullopt;
  return static_cast<pid_t>(*pid);
}

// Anything mounted at or below `dir`? Removing such a directory would delete the
// contents of a live pool.
bool has_mounts_below(const std::string& dir) {
  std::ifstream mounts("/proc/self/mounts");
  for (std::string line; std::getline(mounts, line);) {
    std::istringstream fields(line);
    std::string device, mountpoint;
    fields >> device >> mountpoint;
    if (mountpoint == dir || mountpoint.rfind(dir + "/", 0) == 0) return true;
  }
  return false;
}

std::string sanitized_tag(std::string_view tag) {
  std::string out;
  for (char c : tag) {
    if (std::isalnum(static_cast<unsigned char>(c)) && out.size() < 12) out += c;
  }
  return out.empty() ? "p" : out;
}

Status destroy_pool_retrying(const std::string& pool, int attempts = 20) {
  // zfs-fuse answers "pool is busy" for a moment after heavy use.
  Status last;
  for (int i = 0; i < attempts; ++i) {
    Result<std::string> out = run_tool("zpool", {"destroy", "-f", pool});
    if (out.ok()) return Status::Ok();
    last = out.status();
    if (last.message().find("no such pool") != std::string::npos) return Status::Ok();
    if (last.message().find("busy") == std::string::npos) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return last;
}

ZfsAvailability unavailable(const std::string& why) {
  return {false, "ZFS is not available: " + why + ". " + kHowToGetZfs};
}

bool daemon_answers() {
  Result<RunOutput> out = run({"zpool", "list", "-H", "-o", "name"});
  return out.ok() && out->status.ok();
}

ZfsAvailability start_daemon() {
  if (!fs::exists("/dev/fuse")) return unavailable("zfs-fuse needs /dev/fuse, which is missing");
  if (::geteuid() != 0) {
    return unavailable("the zfs-fuse daemon is not running and only root can start it");
  }
  const std::string pidfile = temp_root() + "/zps-zfs-fuse." + std::to_string(::getpid()) + ".pid";
  // zfs-fuse daemonizes and points its stdio at /dev/null, so run() returns at once.
  Result<RunOutput> out = run({"zfs-fuse", "--pidfile", pidfile});
  if (!out.ok()) return unavailable("zfs-fuse could not be started: " + out.status().message());
  for (int i = 0; i < 100; ++i) {
    if (daemon_answers()) {
      std::string pid;
      {
        std::ifstream in(pidfile);
        in >> pid;
      }
      std::error_code ec;
      fs::remove(pidfile, ec);  // the pid is in the log; the file would only pile up
      std::cerr << "zfs rig: started the zfs-fuse daemon (pid " << pid
                << "); it keeps running for the tests that follow\n";
      return {true, ""};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return unavailable("zfs-fuse was started but zpool did not answer within 10 s");
}

ZfsAvailability check_zfs() {
  Result<RunOutput> out = run({"zpool", "list", "-H", "-o", "name"});
  if (!out.ok()) {
    if (out.status().code() == Code::kNotFound) return unavailable("zpool is not installed");
    return unavailable("zpool list failed: " + out.status().message());
  }
  if (out->status.ok()) return {true, ""};
  return start_daemon();
}

struct TreeEntry {
  char type = '?';  // 'f' file, 'd' directory, 'l' symlink, 'o' other
  std::string data;  // file contents or link target
};

std::map<std::string, TreeEntry> read_tree(const std::string& root) {
  std::map<std::string, TreeEntry> entries;
  struct stat root_st {};
  if (::lstat(root.c_str(), &root_st) != 0) return entries;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    std::string rel = fs::relative(p, root).string();
    if (rel == ".zfs") {
      it.disable_recursion_pending();
      continue;
    }
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) continue;
    TreeEntry e;
    if (S_ISDIR(st.st_mode)) {
      e.type = 'd';
      if (st.st_dev != root_st.st_dev) it.disable_recursion_pending();  // a child dataset
    } else if (S_ISLNK(st.st_mode)) {
      e.type = 'l';
      e.data = fs::read_symlink(p, ec).string();
    } else if (S_ISREG(st.st_mode)) {
      e.type = 'f';
      std::ifstream in(p, std::ios::binary);
      std::ostringstream buf;
      buf << in.rdbuf();
      e.data = buf.str();
    } else {
      e.type = 'o';
    }
    entries.emplace(std::move(rel), std::move(e));
  }
  return entries;
}

}  // namespace

bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

const ZfsAvailability& zfs_availability() {
  static const ZfsAvailability availability = check_zfs();
  return availability;
}

std::string tree_difference(const std::string& dir_a, const std::string& dir_b) {
  if (!fs::is_directory(dir_a)) return dir_a + " is not a directory";
  if (!fs::is_directory(dir_b)) return dir_b + " is not a directory";
  const auto a = read_tree(dir_a);
  const auto b = read_tree(dir_b);
  std::vector<std::string> diffs;
  for (const auto& [name, entry] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      diffs.push_back("only in " + dir_a + ": " + name);
    } else if (it->second.type != entry.type) {
      diffs.push_back(name + ": different types");
    } else if (it->second.data != entry.data) {
      diffs.push_back(name + ": different contents (" + std::to_string(entry.data.size()) +
                      " vs " + std::to_string(it->second.data.size()) + " bytes)");
    }
  }
  for (const auto& [name, entry] : b) {
    if (!a.count(name)) diffs.push_back("only in " + dir_b + ": " + name);
  }
  std::string out;
  for (size_t i = 0; i < diffs.size() && i < 10; ++i) out += diffs[i] + "\n";
  if (diffs.size() > 10) out += "and " + std::to_string(diffs.size() - 10) + " more\n";
  return out;
}

ZfsRig::ZfsRig() {
  std::string pattern =
      temp_root() + "/" + std::string(kRigPrefix) + "-" + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(pattern.data()) != nullptr) dir_ = pattern;
}

ZfsRig::~ZfsRig() {
  Status s = destroy_all();
  if (!s.ok()) std::cerr << "zfs rig: " << s.message() << "\n";
  if (!dir_.empty() && !has_mounts_below(dir_)) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::vector<std::string> ZfsRig::cleanup_leftovers() {
  std::vector<std::string> report;
  const auto leftovers_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  Result<std::string> names = run_tool("zpool", {"list", "-H", "-o", "name"});
  if (!names.ok()) return report;
  for (const std::string& pool : lines_of(*names)) {
    std::optional<pid_t> pid = rig_pid(pool);
    if (!pid) continue;
    if (*pid == ::getpid()) {
      std::lock_guard<std::mutex> lock(registry_mu);
      if (registry().count(pool)) continue;
    } else if (process_alive(*pid)) {
      continue;
    }
    // A leftover that stays busy is left for a later run: with a few of them, full
    // retries here would eat every test's time budget before it starts.
    if (std::chrono::steady_clock::now() > leftovers_deadline) {
      report.push_back("left leftover pool " + pool + " for a later run (out of time)");
      continue;
    }
    Status s = destroy_pool_retrying(pool, 4);
    report.push_back(s.ok() ? "destroyed leftover pool " + pool
                            : "could not destroy leftover pool " + pool + ": " + s.message());
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(temp_root(), ec)) {
    std::optional<pid_t> pid = rig_pid(entry.path().filename().string());
    if (!pid || *pid == ::getpid() || process_alive(*pid) || !entry.is_directory()) continue;
    const std::string dir = entry.path().string();
    if (has_mounts_below(dir)) {
      report.push_back("kept leftover directory " + dir + ": something is still mounted there");
      continue;
    }
    std::error_code rm;
    fs::remove_all(dir, rm);
    report.push_back(rm ? "could not remove " + dir + ": " + rm.message()
                        : "removed leftover directory " + dir);
  }
  return report;
}

Result<std::string> ZfsRig::create_pool(std::string_view tag, uint64_t size) {
  if (dir_.empty()) return Status(Code::kIoError, "the rig has no temporary directory");
  const std::string name = std::string(kRigPrefix) + "-" + std::to_string(::getpid()) + "-" +
                           std::to_string(++pool_counter) + "-" + sanitized_tag(tag);
  const std::string file = dir_ + "/" + name + ".img";
  std::error_code ec;
  { std::ofstream create(file, std::ios::binary); }
  fs::resize_file(file, size, ec);  // sparse: costs no disk until written
  if (ec) return Status(Code::kIoError, "cannot size " + file + ": " + ec.message());
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    registry().insert(name);
  }
  Result<std::string> out = zpool({"create", "-o", "cachefile=none", "-m",
                                   dir_ + "/mnt/" + name, name, file});
  if (!out.ok()) {
    std::lock_guard<std::mutex> lock(registry_mu);
    registry().erase(name);
    fs::remove(file, ec);
    return out.status();
  }
  pools_.push_back(name);
  return name;
}

Status ZfsRig::destroy_pool(const std::string& pool) {
  Status s = destroy_pool_retrying(pool);
  if (!s.ok()) return s.with_context("destroying test pool " + pool);
  std::error_code ec;
  fs::remove(dir_ + "/" + pool + ".img", ec);
  pools_.erase(std::remove(pools_.begin(), pools_.end(), pool), pools_.end());
  std::lock_guard<std::mutex> lock(registry_mu);
  registry().erase(pool);
  return Status::Ok();
}

Status ZfsRig::destroy_all() {
  Status first;
  // Newest first: a later pool may hold clones or receives from an earlier one.
  std::vector<std::string> pools(pools_.rbegin(), pools_.rend());
  for (const std::string& pool : pools) {
    Status s = destroy_pool(pool);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

Result<std::string> ZfsRig::zfs(const std::vector<std::string>& args) {
  return run_tool("zfs", args);
}

Result<std::string> ZfsRig::zpool(const std::vector<std::string>& args) {
  return run_tool("zpool", args);
}

Status ZfsRig::create_dataset(const std::string& dataset) {
  return zfs({"create", dataset}).status();
}

Status ZfsRig::snapshot(const std::string& dataset, const std::string& name) {
  return zfs({"snapshot", dataset + "@" + name}).status();
}

Result<std::string> ZfsRig::mountpoint(const std::string& dataset) {
  Result<std::string> out = zfs({"get", "-H", "-o", "value", "mountpoint", dataset});
  if (!out.ok()) return out.status();
  return trimmed(*out);
}

Status ZfsRig::write_file(const std::string& dataset, const std::string& relative_path,
                          std::string_view contents) {
  Result<std::string> mp = mountpoint(dataset);
  if (!mp.ok()) return mp.status();
  const fs::path path = fs::path(*mp) / relative_path;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return Status(Code::kIoError, "cannot write " + path.string());
  return Status::Ok();
}

Status ZfsRig::write_random_file(const std::string& dataset, const std::string& relative_path,
                                 size_t size, uint32_t seed) {
  std::mt19937 gen(seed);  // fully specified by the standard: same bytes everywhere
  std::string data(size, '\0');
  for (size_t i = 0; i < size; i += 4) {
    uint32_t v = gen();
    for (size_t j = 0; j < 4 && i + j < size; ++j) data[i + j] = static_cast<char>(v >> (8 * j));
  }
  return write_file(dataset, relative_path, data);
}

Result<uint64_t> ZfsRig::guid_of(const std::string& name) {
  Result<std::string> out = zfs({"get", "-Hp", "-o", "value", "guid", name});
  if (!out.ok()) return out.status();
  std::optional<uint64_t> guid = to_u64(trimmed(*out));
  if (!guid) return Status(Code::kProtocol, "guid of " + name + " is not a number: " + *out);
  return *guid;
}

Result<std::vector<SnapshotVersion>> ZfsRig::snapshots(const std::string& dataset) {
  Result<std::string> names =
      zfs({"list", "-H", "-t", "snapshot", "-o", "name", "-s", "createtxg", "-d", "1", dataset});
  if (!names.ok()) return names.status();
  std::vector<std::string> args = {"get", "-Hp", "-o", "name,property,value", "guid,createtxg"};
  const std::vector<std::string> full_names = lines_of(*names);
  if (full_names.empty()) return std::vector<SnapshotVersion>{};
  args.insert(args.end(), full_names.begin(), full_names.end());
  Result<std::string> props = zfs(args);
  if (!props.ok()) return props.status();
  std::map<std::string, SnapshotVersion> by_name;
  for (const std::string& line : lines_of(*props)) {
    std::istringstream fields(line);
    std::string name, property, value;
    std::getline(fields, name, '\t');
    std::getline(fields, property, '\t');
    std::getline(fields, value, '\t');
    std::optional<uint64_t> v = to_u64(value);
    if (!v) return Status(Code::kProtocol, "unexpected zfs get line: " + line);
    SnapshotVersion& s = by_name[name];
    (property == "guid" ? s.guid : s.createtxg) = *v;
  }
  std::vector<SnapshotVersion> snaps;
  for (const std::string& full : full_names) {
    SnapshotVersion s = by_name[full];
    s.name = full.substr(full.find('@') + 1);
    snaps.push_back(s);
  }
  return snaps;
}

// ---- ZfsTest ----

namespace {

template <typename T>
T must(Result<T> result, const std::string& what) {
  if (!result.ok()) throw RigError(what + ": " + result.status().message());
  return std::move(result).value();
}

void must(const Status& status, const std::string& what) {
  if (!status.ok()) throw RigError(what + ": " + status.message());
}

}  // namespace

void ZfsTest::SetUp() {
  const ZfsAvailability& zfs = zfs_availability();
  if (!zfs.available) {
    if (running_in_ci()) FAIL() << zfs.reason << " (CI=true: tests that need ZFS must run)";
    GTEST_SKIP() << zfs.reason;
  }
  static std::once_flag cleaned;
  std::call_once(cleaned, [] {
    for (const std::string& line : ZfsRig::cleanup_leftovers()) {
      std::cerr << "zfs rig: " << line << "\n";
    }
  });
  rig_ = std::make_unique<ZfsRig>();
  ASSERT_FALSE(rig_->dir().empty()) << "cannot create a temporary directory in " << temp_root();
}

void ZfsTest::TearDown() {
  if (!rig_) return;
  Status s = rig_->destroy_all();
  EXPECT_TRUE(s.ok()) << s.message();
  rig_.reset();
}

std::string ZfsTest::create_pool(std::string_view tag) {
  return must(rig_->create_pool(tag), "creating a test pool");
}

std::string ZfsTest::zfs(const std::vector<std::string>& args) {
  return must(rig_->zfs(args), "running zfs");
}

void ZfsTest::create_dataset(const std::string& dataset) {
  must(rig_->create_dataset(dataset), "creating " + dataset);
}

void ZfsTest::snapshot(const std::string& dataset, const std::string& name) {
  must(rig_->snapshot(dataset, name), "snapshotting " + dataset + "@" + name);
}

std::string ZfsTest::mountpoint(const std::string& dataset) {
  return must(rig_->mountpoint(dataset), "reading the mountpoint of " + dataset);
}

void ZfsTest::write_file(const std::string& dataset, const std::string& path,
                         std::string_view data) {
  must(rig_->write_file(dataset, path, data), "writing " + path + " in " + dataset);
}

void ZfsTest::write_random_file(const std::string& dataset, const std::string& path,
                                size_t size, uint32_t seed) {
  must(rig_->write_random_file(dataset, path, size, seed), "writing " + path + " in " + dataset);
}

uint64_t ZfsTest::guid_of(const std::string& name) {
  return must(rig_->guid_of(name), "reading the guid of " + name);
}

std::vector<SnapshotVersion> ZfsTest::snapshots(const std::string& dataset) {
  return must(rig_->snapshots(dataset), "listing the snapshots of " + dataset);
}

void ZfsTest::expect_same_files(const std::string& dataset_a, const std::string& dataset_b) {
  std::string diff = tree_difference(mountpoint(dataset_a), mountpoint(dataset_b));
  EXPECT_EQ(diff, "") << "files of " << dataset_a << " and " << dataset_b << " differ";
}

}  // namespace zps::test
