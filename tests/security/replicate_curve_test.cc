// The replication suite's main cases with CURVE on: the 30-hop chain and the clone
// cases of tests/integration/cluster/replicate_test.cc, on a cluster whose broker,
// agents, zpsctl and data pipes all use keys. The receiver's data socket then accepts
// only the sending agent's key, which the broker took from its authorized keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/cluster.h"

namespace zps::test {
namespace {

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

class CurveReplicate : public ClusterTest {
 protected:
  void start_nodes() {
    src_ = create_pool("src");
    dst_ = create_pool("dst");
    if (Status s = cluster().enable_curve({"src1", "dst1"}); !s.ok()) FAIL() << s.message();
    start_broker();
    start_agent({"src1", {}, {}});
    start_agent({"dst1", {dst_ + "/backup"}, {}});
    wait_alive({"src1", "dst1"});
  }

  std::string target_of(const std::string& source) const { return dst_ + "/backup/src1/" + source; }

  CtlResult replicate(const std::string& source) {
    return cluster().ctl({"replicate", "src1:" + source, "dst1"});
  }

  std::string origin_of(const std::string& dataset) {
    std::string s = zfs({"get", "-H", "-o", "value", "origin", dataset});
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  void expect_same_snapshots(const std::string& source, const std::string& target) {
    std::vector<std::pair<std::string, uint64_t>> a, b;
    for (const auto& s : snapshots(source)) a.emplace_back(s.name, s.guid);
    for (const auto& s : snapshots(target)) b.emplace_back(s.name, s.guid);
    EXPECT_FALSE(a.empty()) << source << " has no snapshots";
    EXPECT_EQ(a, b) << "snapshots (name, guid) of " << source << " and " << target;
  }

  // The pipes really were CURVE: the receiver's ZAP handler accepted the sender.
  void expect_curve_in_logs() {
    const std::string logs = cluster().logs();
    EXPECT_NE(logs.find("CURVE on"), std::string::npos);
    EXPECT_NE(logs.find("accepted data connection"), std::string::npos)
        << "no data connection went through the receiver's ZAP handler";
  }

  std::string src_;
  std::string dst_;
};

TEST_F(CurveReplicate, FullSendThenThirtyIncrementalHops) {
  start_nodes();
  const std::string src = src_ + "/chain";
  create_dataset(src);
  std::vector<std::string> names;
  for (int i = 0; i <= 30; ++i) {
    write_file(src, "step", "step " + std::to_string(i) + "\n");
    write_random_file(src, "data-" + std::to_string(i % 4), 4096 + i * 97,
                      static_cast<uint32_t>(i));
    names.push_back("s" + std::to_string(i));
    snapshot(src, names.back());
  }
  const CtlResult r = replicate(src);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.json.value("state", ""), "succeeded");
  const auto& hops = r.json["hops"];
  ASSERT_EQ(hops.size(), 31u) << r.describe();
  EXPECT_EQ(hops[0].value("from", "x"), "") << "the first hop is a full send";
  for (size_t i = 1; i < hops.size(); ++i) {
    EXPECT_EQ(hops[i].value("from", ""), names[i - 1]) << "hop " << i + 1;
    EXPECT_EQ(hops[i].value("to", ""), names[i]) << "hop " << i + 1;
  }
  expect_same_snapshots(src, target_of(src));
  expect_same_files(src, target_of(src));
  for (const auto& line : cluster().zfs_commands("src1")) {
    const auto w = words(line);
    EXPECT_TRUE(std::find(w.begin(), w.end(), "-I") == w.end()) << line;
  }
  expect_curve_in_logs();
}

TEST_F(CurveReplicate, ClonesArriveAsClonesWhenTheirOriginIsThere) {
  start_nodes();
  const std::string base = src_ + "/base";
  create_dataset(base);
  write_random_file(base, "base-data", 256 * 1024, 1);
  snapshot(base, "b1");
  write_file(base, "later", "after b1\n");
  snapshot(base, "b2");
  const std::string clone = src_ + "/clone";
  zfs({"clone", base + "@b1", clone});
  write_file(clone, "own", "the clone's own file\n");
  snapshot(clone, "c1");
  snapshot(clone, "c2");

  const CtlResult base_run = replicate(base);
  ASSERT_EQ(base_run.exit_code, 0) << base_run.describe();
  const CtlResult clone_run = replicate(clone);
  ASSERT_EQ(clone_run.exit_code, 0) << clone_run.describe();
  ASSERT_FALSE(clone_run.json["hops"].empty()) << clone_run.describe();
  EXPECT_EQ(clone_run.json["hops"][0].value("from", ""), base + "@b1");
  EXPECT_EQ(origin_of(target_of(clone)), target_of(base) + "@b1");
  expect_same_snapshots(clone, target_of(clone));
  expect_same_files(clone, target_of(clone));

  // An origin the target never got: the clone comes over whole.
  const std::string lone = src_ + "/lone";
  create_dataset(lone);
  write_random_file(lone, "lone-data", 128 * 1024, 2);
  snapshot(lone, "l1");
  const std::string orphan = src_ + "/orphan";
  zfs({"clone", lone + "@l1", orphan});
  snapshot(orphan, "o1");
  const CtlResult orphan_run = replicate(orphan);
  ASSERT_EQ(orphan_run.exit_code, 0) << orphan_run.describe();
  EXPECT_EQ(orphan_run.json["hops"][0].value("from", "x"), "") << "a full send";
  EXPECT_EQ(origin_of(target_of(orphan)), "-");
  expect_same_snapshots(orphan, target_of(orphan));
  expect_curve_in_logs();
}

}  // namespace
}  // namespace zps::test
