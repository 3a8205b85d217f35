#include "tests/support/fault_cluster.h"

#include <gtest/gtest.h>

namespace zps::test {

using namespace std::chrono_literals;

void FaultTest::SetUp() {
  ClusterTest::SetUp();
  if (IsSkipped() || HasFatalFailure()) return;
  src_ = create_pool("src");
  dst_ = create_pool("dst");
  root_ = dst_ + "/backup";
  gate_ = std::make_unique<SendGate>(rig().dir());
}

void FaultTest::TearDown() {
  if (gate_) gate_->open();
  ClusterTest::TearDown();
}

void FaultTest::start_cluster(const std::vector<std::string>& broker_extra,
                              const std::vector<std::string>& src_extra,
                              const std::vector<std::string>& dst_extra) {
  start_broker(broker_extra);
  std::vector<std::string> src_args = {"--zfs", gate_->zfs_path()};
  src_args.insert(src_args.end(), src_extra.begin(), src_extra.end());
  start_agent({"src1", {}, src_args});
  start_agent({"dst1", {root_}, dst_extra});
  wait_alive({"src1", "dst1"});
}

std::string FaultTest::make_source(const std::string& name, int snaps, size_t bytes) {
  const std::string ds = src_ + "/" + name;
  create_dataset(ds);
  for (int i = 1; i <= snaps; ++i) {
    write_random_file(ds, "f" + std::to_string(i), bytes, static_cast<uint32_t>(i * 7919));
    snapshot(ds, "s" + std::to_string(i));
  }
  return ds;
}

uint64_t FaultTest::replicate_detached(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"replicate"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--detach");
  CtlResult r = cluster().ctl(argv);
  if (r.exit_code != 0 || !r.json.is_object() || !r.json.contains("job")) {
    throw RigError("replicate --detach failed: " + r.describe());
  }
  return r.json["job"].get<uint64_t>();
}

void FaultTest::wait_hop_held() {
  const pid_t dst = pid_of("dst1");
  if (!wait_until([&] { return gate_->holding() && !zfs_children(dst, "recv").empty(); }, 60s)) {
    throw RigError("no hop got held in flight within 60 s\n" + cluster().logs());
  }
}

CtlResult FaultTest::watch(uint64_t job) { return cluster().ctl({"watch", std::to_string(job)}); }

nlohmann::json FaultTest::job(uint64_t id) {
  CtlResult r = cluster().ctl({"job", std::to_string(id)});
  if (!r.json.is_object()) throw RigError("zpsctl job: " + r.describe());
  return r.json;
}

nlohmann::json FaultTest::locks() {
  CtlResult r = cluster().ctl({"locks"});
  if (r.exit_code != 0 || !r.json.is_array()) throw RigError("zpsctl locks: " + r.describe());
  return r.json;
}

bool FaultTest::wait_locks_released(std::chrono::milliseconds timeout) {
  return wait_until([&] { return locks().empty(); }, timeout);
}

pid_t FaultTest::pid_of(const std::string& agent) {
  const pid_t pid = cluster().agent_pid(agent);
  if (pid <= 0) throw RigError("agent " + agent + " is not running");
  return pid;
}

void FaultTest::expect_nothing_partial(const std::string& source, const std::string& target) {
  const auto s = snapshots(source);
  const std::string exists = zfs({"list", "-H", "-o", "name", "-t", "all", "-r", root_});
  EXPECT_EQ(exists.find('%'), std::string::npos) << "a partial receive is left:\n" << exists;
  if (exists.find(target + "\n") == std::string::npos) return;  // nothing arrived at all
  const auto t = snapshots(target);
  ASSERT_LE(t.size(), s.size()) << target << " has more snapshots than " << source;
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(t[i].guid, s[i].guid) << target << "@" << t[i].name << " is not " << source << "@"
                                    << s[i].name;
  }
}

nlohmann::json FaultTest::rerun_until_level(const std::string& source, const std::string& target) {
  CtlResult r = cluster().ctl({"replicate", "src1:" + source, "dst1:" + target});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.json.value("state", ""), "succeeded") << r.out;
  const auto s = snapshots(source);
  const auto t = snapshots(target);
  EXPECT_EQ(t.size(), s.size()) << source << " vs " << target;
  for (size_t i = 0; i < std::min(s.size(), t.size()); ++i) {
    EXPECT_EQ(t[i].guid, s[i].guid) << target << "@" << t[i].name;
  }
  expect_same_files(source, target);
  return r.json;
}

std::string FaultTest::warnings_of(const nlohmann::json& job) {
  std::string out;
  if (!job.is_object() || !job.contains("warnings") || !job["warnings"].is_array()) return out;
  for (const auto& w : job["warnings"]) out += w.get<std::string>() + "\n";
  return out;
}

}  // namespace zps::test
