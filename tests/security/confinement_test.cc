// Confinement and hostile input under CURVE: a target outside every receive root, and
// a table of hostile names and fields, refused by the broker (through zpsctl and by a
// client that skips zpsctl's checks) and, with the broker bypassed, by the receiving
// agent itself, each with a message that says why, and before any zfs command runs
// for them.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "shared/channel.h"
#include "shared/curve.h"
#include "shared/process.h"
#include "shared/protocol.h"
#include "tests/security/hostile_inputs.h"
#include "tests/support/cluster.h"
#include "tests/support/cluster_keys.h"
#include "tests/support/fake_broker.h"
#include "tests/support/log_text.h"
#include "tests/support/paths.h"
#include "tests/support/raw_client.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out.size() > 80 ? out.substr(0, 80) + "..." : out;
}

// The operator's keys, for requests sent straight to the broker.
ClientSecurity operator_security(const ClusterKeys& keys) {
  ClientSecurity security;
  auto ops = load_secret_key(keys.prefix(ClusterKeys::kOperator) + ".key");
  if (ops.ok()) security.own = *ops;
  security.broker_key = keys.broker_keys().public_z85;
  return security;
}

class BrokerConfinement : public ClusterTest {};

TEST_F(BrokerConfinement, TargetsOutsideEveryRootAndHostileNamesAreRefused) {
  const std::string src = create_pool("src");
  const std::string dst = create_pool("dst");
  const std::string root = dst + "/backup";
  ASSERT_TRUE(cluster().enable_curve({"src1", "dst1"}).ok());
  start_broker();
  start_agent({"src1", {}, {}});
  start_agent({"dst1", {root}, {}});
  wait_alive({"src1", "dst1"});
  const std::string data = src + "/data";
  create_dataset(data);
  snapshot(data, "s1");
  const size_t dst_before = cluster().zfs_commands("dst1").size();

  // Outside every receive root: beside it, above it, in another pool, a prefix look-alike.
  for (const std::string& target :
       std::vector<std::string>{dst + "/elsewhere", dst, src + "/x", root + "x/y"}) {
    CtlResult r = cluster().ctl({"replicate", "src1:" + data, "dst1:" + target});
    EXPECT_EQ(r.exit_code, 4) << target << "\n" << r.describe();
    EXPECT_NE(r.err.find("outside every receive root of dst1"), std::string::npos) << r.err;
  }

  zmq::context_t ctx;
  const ClientSecurity ops = operator_security(*cluster().keys());
  ASSERT_TRUE(ops.curve());
  const auto table = hostile_names();
  ASSERT_GE(table.size(), 20u);
  for (const HostileName& h : table) {
    const std::string as_source = place_under(h.name, src);
    const std::string as_target = place_under(h.name, root);
    SCOPED_TRACE(printable(h.name));
    proto::ReplicateRequest req{"src1", as_source, "dst1", root + "/t", false, false};
    auto reply = raw_call(ctx, cluster().endpoint(), req, ops);
    ASSERT_TRUE(reply.has_value()) << "no answer from the broker";
    EXPECT_FALSE(reply->ok);
    EXPECT_NE(reply->err.msg.find(h.why), std::string::npos) << reply->err.msg;
    req = {"src1", data, "dst1", as_target, true, true};
    reply = raw_call(ctx, cluster().endpoint(), req, ops);
    ASSERT_TRUE(reply.has_value()) << "no answer from the broker";
    EXPECT_FALSE(reply->ok);
    EXPECT_NE(reply->err.msg.find(h.why), std::string::npos) << reply->err.msg;
    // As an agent id, and as a dataset to list.
    req = {"src1", data, place_under(h.name, "x"), "", false, false};
    reply = raw_call(ctx, cluster().endpoint(), req, ops);
    ASSERT_TRUE(reply.has_value());
    EXPECT_FALSE(reply->ok);
    EXPECT_NE(reply->err.msg.find("agent id"), std::string::npos) << reply->err.msg;
    reply = raw_call(ctx, cluster().endpoint(), proto::SnapshotsRequest{"src1", as_source}, ops);
    ASSERT_TRUE(reply.has_value());
    EXPECT_FALSE(reply->ok);
    EXPECT_NE(reply->err.msg.find(h.why), std::string::npos) << reply->err.msg;
  }
  CtlResult jobs = cluster().ctl({"jobs", "--all"});
  EXPECT_EQ(jobs.exit_code, 0) << jobs.describe();
  EXPECT_TRUE(jobs.json.is_array() && jobs.json.empty()) << jobs.out;
  const auto cmds = cluster().zfs_commands("dst1");
  for (size_t i = dst_before; i < cmds.size(); ++i) {
    EXPECT_EQ(cmds[i].find(" recv"), std::string::npos) << "dst1 ran " << cmds[i];
  }
}

// A real receiving agent (CURVE) and a broker played by the test.
class ReceiverConfinement : public ZfsTest {
 protected:
  void SetUp() override {
    ZfsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    dst_ = create_pool("dst");
    root_ = dst_ + "/backup";
    auto keys = ClusterKeys::create(rig().dir(), {"dst1", "src1"});
    ASSERT_TRUE(keys.ok()) << keys.status().message();
    keys_ = std::make_unique<ClusterKeys>(std::move(*keys));
    auto agent_key = load_public_key(keys_->prefix("dst1") + ".pub");
    ASSERT_TRUE(agent_key.ok());
    broker_ = std::make_unique<FakeBroker>(
        ctx_, FakeBroker::Curve{keys_->broker_keys(), *agent_key, "dst1"});
    zfs_log_ = rig().dir() + "/dst1.zfs.log";
    log_ = rig().dir() + "/dst1.log";
    const int lo = 23000 + static_cast<int>(::getpid() % 9000);
    SpawnOptions o;
    o.log_file = log_;
    std::vector<std::string> argv = {bin_path("zps-agent"), "--broker", broker_->endpoint(),
                                     "--id", "dst1", "--data-ports",
                                     std::to_string(lo) + "-" + std::to_string(lo + 39),
                                     "--recv-root", root_, "--zfs-log", zfs_log_,
                                     "--log-level", "debug"};
    for (const auto& a : keys_->agent_args("dst1")) argv.push_back(a);
    auto p = Process::spawn(argv, o);
    ASSERT_TRUE(p.ok()) << p.status().message();
    agent_ = std::move(*p);
    ASSERT_TRUE(broker_->accept_agent(30s)) << "the agent did not say hello\n" << read_text(log_);
    auto src_key = load_public_key(keys_->prefix("src1") + ".pub");
    ASSERT_TRUE(src_key.ok());
    src_key_ = *src_key;
  }

  void TearDown() override {
    if (agent_) {
      agent_->kill(SIGTERM);
      if (!agent_->wait_for(10s)) {
        agent_->kill(SIGKILL);
        agent_->wait();
      }
      if (HasFailure()) std::cerr << "---- dst1.log\n" << read_text(log_);
      agent_.reset();
    }
    broker_.reset();
    ZfsTest::TearDown();
  }

  proto::PrepareRequest prepare_for(const std::string& dataset) {
    proto::PrepareRequest p;
    p.job = 1;
    p.hop = 1;
    p.dataset = dataset;
    p.fence = 1;
    p.to_guid = 1;
    p.snapshot = "s1";
    p.sender = "src1";
    p.sender_key = src_key_;
    return p;
  }

  // The refusal of a request: "code: message", or what happened instead.
  std::string refusal(const std::optional<proto::Envelope>& r) {
    if (!r) return "no answer";
    if (r->ok) return "accepted";
    return r->err.code + ": " + r->err.msg;
  }

  std::vector<std::string> zfs_commands() const {
    std::vector<std::string> out;
    std::ifstream in(zfs_log_);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  zmq::context_t ctx_;
  std::unique_ptr<ClusterKeys> keys_;
  std::string dst_, root_, zfs_log_, log_, src_key_;
  std::unique_ptr<FakeBroker> broker_;
  std::unique_ptr<Process> agent_;
};

TEST_F(ReceiverConfinement, RefusesTargetsOutsideItsRootsAndHostileNamesOnItsOwn) {
  const size_t before = zfs_commands().size();
  for (const std::string& target :
       std::vector<std::string>{dst_ + "/elsewhere", dst_, root_ + "x/y", "otherpool/x"}) {
    SCOPED_TRACE(target);
    std::string why = refusal(broker_->call(prepare_for(target)));
    EXPECT_NE(why.find("outside every receive root"), std::string::npos) << why;
    why = refusal(broker_->call(proto::TargetStateRequest{1, target, 0}));
    EXPECT_NE(why.find("outside every receive root"), std::string::npos) << why;
  }

  const auto table = hostile_names();
  for (const HostileName& h : table) {
    SCOPED_TRACE(printable(h.name));
    const std::string target = place_under(h.name, root_);
    std::string why = refusal(broker_->call(prepare_for(target)));
    EXPECT_NE(why.find(h.why), std::string::npos) << why;
    why = refusal(broker_->call(proto::TargetStateRequest{1, target, 0}));
    EXPECT_NE(why.find(h.why), std::string::npos) << why;
    // As the snapshot a hop delivers (a component: '/' and '@' are refused there too).
    proto::PrepareRequest snap = prepare_for(root_ + "/t");
    snap.snapshot = place_under(h.name, "s");
    why = refusal(broker_->call(snap));
    EXPECT_NE(why, "accepted");
    EXPECT_NE(why, "no answer");
    EXPECT_NE(why.find("snapshot name"), std::string::npos) << why;
    // And as a dataset to list for a job start or a snapshots request.
    proto::SnapshotsRequest list{"dst1", place_under(h.name, dst_)};
    why = refusal(broker_->call(list));
    EXPECT_NE(why.find(h.why), std::string::npos) << why;
  }

  // Under CURVE a prepare must name the sender's key (the broker stamps it).
  proto::PrepareRequest keyless = prepare_for(root_ + "/t");
  keyless.sender_key.clear();
  const std::string why = refusal(broker_->call(keyless));
  EXPECT_NE(why.find("names no sender key"), std::string::npos) << why;

  const auto cmds = zfs_commands();
  for (size_t i = before; i < cmds.size(); ++i) {
    EXPECT_EQ(cmds[i].find(" recv"), std::string::npos) << "the agent ran " << cmds[i];
    EXPECT_EQ(cmds[i].find(" create"), std::string::npos) << "the agent ran " << cmds[i];
  }
}

}  // namespace
}  // namespace zps::test
