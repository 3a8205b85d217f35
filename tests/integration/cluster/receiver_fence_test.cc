// A real zps-agent talking to a fake broker that the test plays by hand: what the
// receiving agent refuses on its own, whatever a broker (a buggy, stale or hostile one)
// tells it. A prepare carrying an older fencing token than the agent has seen for that
// dataset, a prepare while the dataset is receiving, a target outside every receive
// root, an incremental whose base is no longer the target's latest snapshot, and
// hostile names in prepare, target_state, snapshots and job_start are all refused
// before any zfs command runs for them.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <tuple>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "shared/channel.h"
#include "shared/process.h"
#include "shared/protocol.h"
#include "tests/support/fake_broker.h"
#include "tests/support/paths.h"
#include "tests/support/zfs_rig.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class AgentAlone : public ZfsTest {
 protected:
  void SetUp() override {
    ZfsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    dst_ = create_pool("dst");
    root_ = dst_ + "/backup";
    broker_ = std::make_unique<FakeBroker>(ctx_);
    zfs_log_ = rig().dir() + "/dst1.zfs.log";
    log_ = rig().dir() + "/dst1.log";
    const int lo = 20000 + static_cast<int>(::getpid() % 9000);
    SpawnOptions o;
    o.log_file = log_;
    auto p = Process::spawn({bin_path("zps-agent"), "--broker", broker_->endpoint(), "--id", "dst1",
                             "--data-ports", std::to_string(lo) + "-" + std::to_string(lo + 39),
                             "--recv-root", root_, "--zfs-log", zfs_log_, "--log-level", "debug"},
                            o);
    ASSERT_TRUE(p.ok()) << p.status().message();
    agent_ = std::move(*p);
    ASSERT_TRUE(broker_->accept_agent(20s)) << "the agent did not say hello\n" << read_text(log_);
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

  proto::PrepareRequest prepare_for(uint64_t job, const std::string& dataset, uint64_t fence) {
    proto::PrepareRequest p;
    p.job = job;
    p.hop = 1;
    p.dataset = dataset;
    p.fence = fence;
    p.to_guid = 1;
    p.snapshot = "s1";
    p.sender = "src1";
    return p;
  }

  // Prepares a receive that must be accepted; returns its session.
  uint64_t prepare_ok(uint64_t job, const std::string& dataset, uint64_t fence) {
    return prepare_ok(prepare_for(job, dataset, fence));
  }
  uint64_t prepare_ok(const proto::PrepareRequest& request) {
    auto r = broker_->call(request);
    if (!r) throw RigError("no answer to prepare\n" + read_text(log_));
    if (!r->ok) throw RigError("prepare refused: " + r->err.msg);
    auto reply = r->as<proto::PrepareReply>();
    if (!reply.ok()) throw RigError(reply.status().message());
    EXPECT_EQ(reply->endpoint.rfind("tcp://", 0), 0u) << reply->endpoint;
    EXPECT_FALSE(reply->token.empty());
    return reply->session;
  }

  // Aborts a session (its zfs recv is killed) and waits for its verdict.
  void abort_and_settle(uint64_t job, uint64_t session) {
    auto a = broker_->call(proto::AbortRequest{job, session, "the test is done with it"});
    ASSERT_TRUE(a && a->ok);
    auto v = broker_->call(proto::RecvResultRequest{job, session});
    ASSERT_TRUE(v && v->ok) << (v ? v->err.msg : "no answer");
    auto verdict = v->as<proto::RecvResultReply>();
    ASSERT_TRUE(verdict.ok());
    EXPECT_FALSE(verdict->ok);
    EXPECT_NE(verdict->reason.find("aborted"), std::string::npos) << verdict->reason;
  }

  // A refused request: its error code and message.
  std::pair<std::string, std::string> refusal(const std::optional<proto::Envelope>& r) {
    if (!r) return {"no answer", ""};
    if (r->ok) return {"accepted", ""};
    return {r->err.code, r->err.msg};
  }

  std::vector<std::string> zfs_commands() const { return read_lines(zfs_log_); }

  zmq::context_t ctx_;
  std::string dst_, root_, zfs_log_, log_;
  std::unique_ptr<FakeBroker> broker_;
  std::unique_ptr<Process> agent_;
};

size_t count_containing(const std::vector<std::string>& lines, const std::string& needle) {
  size_t n = 0;
  for (const auto& l : lines) n += l.find(needle) != std::string::npos;
  return n;
}

class ReceiverFence : public AgentAlone {};

TEST_F(ReceiverFence, PrepareWithAnOlderFencingTokenIsRefused) {
  const std::string target = root_ + "/fenced";
  const uint64_t s1 = prepare_ok(10, target, 5);

  // While job 10 receives, even a newer token does not get a second receive in.
  auto [code, msg] = refusal(broker_->call(prepare_for(11, target, 7)));
  EXPECT_EQ(code, "refused") << msg;
  EXPECT_NE(msg.find("already receiving (job 10)"), std::string::npos) << msg;
  abort_and_settle(10, s1);

  // Token 5 has received here: a job with token 3 lost its lock long ago.
  std::tie(code, msg) = refusal(broker_->call(prepare_for(9, target, 3)));
  EXPECT_EQ(code, "refused") << msg;
  EXPECT_NE(msg.find("stale fencing token 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(token 5)"), std::string::npos) << msg;
  EXPECT_NE(msg.find(target), std::string::npos) << msg;

  // The same token again (the same job's next hop) and a newer one are fine; after
  // the newer one, the old token is stale too.
  abort_and_settle(10, prepare_ok(10, target, 5));
  abort_and_settle(12, prepare_ok(12, target, 6));
  std::tie(code, msg) = refusal(broker_->call(prepare_for(10, target, 5)));
  EXPECT_EQ(code, "refused") << msg;
  EXPECT_NE(msg.find("stale fencing token 5"), std::string::npos) << msg;

  // Tokens are per dataset: another dataset has seen none.
  abort_and_settle(9, prepare_ok(9, root_ + "/other", 3));

  // Only the accepted prepares ran zfs recv.
  const auto cmds = zfs_commands();
  EXPECT_EQ(count_containing(cmds, " recv "), 4u);
  for (const auto& c : cmds) EXPECT_EQ(c.find(" send "), std::string::npos) << c;
}

TEST_F(ReceiverFence, TargetOutsideTheReceiveRootsIsRefusedByTheReceiver) {
  for (const std::string& outside : {dst_ + "/elsewhere", dst_, dst_ + "/backupx/a"}) {
    auto [code, msg] = refusal(broker_->call(prepare_for(20, outside, 1)));
    EXPECT_EQ(code, "outside_root") << outside << ": " << msg;
    EXPECT_NE(msg.find("outside every receive root"), std::string::npos) << msg;
    EXPECT_NE(msg.find(root_), std::string::npos) << msg;
    std::tie(code, msg) = refusal(broker_->call(proto::TargetStateRequest{20, outside, 0}));
    EXPECT_EQ(code, "outside_root") << outside << ": " << msg;
  }
  EXPECT_EQ(count_containing(zfs_commands(), " recv "), 0u);
  EXPECT_EQ(count_containing(zfs_commands(), "elsewhere"), 0u);
}

// Without --force an incremental is received with -F (a received child's mountpoint
// directory would otherwise block its parent's next incremental), so the receiver
// first makes sure -F can only discard changes, never a snapshot: the hop's base must
// be the target's latest snapshot.
class ReceiverDiverged : public AgentAlone {
 protected:
  // A target with @a and @b, and a prepare of job `job` for an incremental based on
  // @a: as if @b was taken on the target after the job planned.
  proto::PrepareRequest moved_on(const std::string& target, uint64_t job) {
    create_dataset(target);
    snapshot(target, "a");
    snapshot(target, "b");
    auto p = prepare_for(job, target, 1);
    p.rollback_guid = guid_of(target + "@a");
    return p;
  }
};

TEST_F(ReceiverDiverged, IncrementalIsRefusedUnlessItsBaseIsTheTargetsLatestSnapshot) {
  const std::string target = root_ + "/inc";
  auto p = moved_on(target, 40);
  auto [code, msg] = refusal(broker_->call(p));
  EXPECT_EQ(code, "target_newer") << msg;
  EXPECT_NE(msg.find("after @a"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the latest is @b"), std::string::npos) << msg;
  p.rollback_guid = 12345;  // a base the target does not have
  std::tie(code, msg) = refusal(broker_->call(p));
  EXPECT_EQ(code, "diverged") << msg;
  EXPECT_EQ(count_containing(zfs_commands(), " recv "), 0u);

  p.rollback_guid = guid_of(target + "@b");
  abort_and_settle(40, prepare_ok(p));
  const auto cmds = zfs_commands();
  ASSERT_EQ(count_containing(cmds, " recv "), 1u);
  EXPECT_EQ(count_containing(cmds, " recv -F " + target), 1u);
  EXPECT_EQ(count_containing(cmds, "rollback"), 0u);
  ASSERT_EQ(snapshots(target).size(), 2u);
}

// A plain incremental (the sender's first try of every hop without --force) is taken
// without a look at the target and received without -F: zfs recv itself refuses it,
// changing nothing, when the target moved on. Here the base is no longer the latest
// snapshot, so the receiver must not list, must not roll back and must not use -F.
TEST_F(ReceiverDiverged, PlainIncrementalIsReceivedWithoutListingOrRecvF) {
  const std::string target = root_ + "/plain";
  auto p = moved_on(target, 41);
  p.plain = true;
  const size_t before = zfs_commands().size();
  abort_and_settle(41, prepare_ok(p));
  const auto all = zfs_commands();
  const std::vector<std::string> cmds(all.begin() + static_cast<long>(before), all.end());
  ASSERT_EQ(count_containing(cmds, " recv "), 1u);
  EXPECT_EQ(count_containing(cmds, " recv " + target), 1u);
  EXPECT_EQ(count_containing(cmds, "-F"), 0u);
  // (The agent's periodic pool refresh may run a `zfs get` of the pools meanwhile.)
  const auto lists_target = [&](const std::string& c) {
    return c.find(" get ") != std::string::npos && c.find(target) != std::string::npos;
  };
  EXPECT_EQ(std::count_if(cmds.begin(), cmds.end(), lists_target), 0)
      << "a plain prepare lists nothing";
  EXPECT_EQ(count_containing(cmds, "rollback"), 0u);
  ASSERT_EQ(snapshots(target).size(), 2u);

  // With force, plain means nothing: the target is rolled back to the base first.
  p.job = 42;
  p.force = true;
  p.rollback_guid = guid_of(target + "@b");
  abort_and_settle(42, prepare_ok(p));
  EXPECT_EQ(count_containing(zfs_commands(), " recv -F " + target), 1u);
}

class HostileNamesAtTheAgent : public AgentAlone {};

TEST_F(HostileNamesAtTheAgent, AreRefusedBeforeAnyZfsCommandRuns) {
  const std::vector<std::string> hostile = {
      root_ + "/../x", "../x",        "-o",           root_ + "/-o", root_ + "/a b",
      root_ + "/a;b",  root_ + "/a\nb", root_ + "/" + std::string(300, 'a'), root_ + "/$(id)"};
  const size_t before = zfs_commands().size();
  uint64_t job = 30;
  for (const std::string& name : hostile) {
    auto [code, msg] = refusal(broker_->call(prepare_for(30, name, 1)));
    EXPECT_EQ(code, "invalid_argument") << "prepare " << name << ": " << msg;
    EXPECT_NE(msg.find("dataset name"), std::string::npos) << msg;

    std::tie(code, msg) = refusal(broker_->call(proto::TargetStateRequest{30, name, 0}));
    EXPECT_EQ(code, "invalid_argument") << "target_state " << name << ": " << msg;

    std::tie(code, msg) = refusal(broker_->call(proto::SnapshotsRequest{"dst1", name}));
    EXPECT_EQ(code, "invalid_argument") << "snapshots " << name << ": " << msg;

    // As a job's source, and as its target.
    // Each job_start gets its own job id: the agent refuses a job id it still runs.
    proto::JobStart as_source{++job, name, "dst1", root_ + "/t", false, false, 1};
    std::tie(code, msg) = refusal(broker_->call(as_source));
    EXPECT_EQ(code, "invalid_argument") << "job_start source " << name << ": " << msg;
    proto::JobStart as_target{++job, root_, "dst1", name, false, false, 1};
    std::tie(code, msg) = refusal(broker_->call(as_target));
    EXPECT_EQ(code, "invalid_argument") << "job_start target " << name << ": " << msg;
  }
  // A hostile snapshot name in prepare.
  auto p = prepare_for(33, root_ + "/fine", 1);
  for (const std::string snap : {"-o", "a b", "x;y", "../s", ""}) {
    p.snapshot = snap;
    auto [code, msg] = refusal(broker_->call(p));
    EXPECT_EQ(code, "invalid_argument") << "snapshot '" << snap << "': " << msg;
  }
  // The agent's periodic free-space query may run meanwhile; nothing else may.
  const auto cmds = zfs_commands();
  for (size_t i = before; i < cmds.size(); ++i) {
    if (cmds[i].find(" get -Hp -o name,value available ") == std::string::npos) {
      ADD_FAILURE() << "zfs ran: " << cmds[i];
    }
  }
}

}  // namespace
}  // namespace zps::test
