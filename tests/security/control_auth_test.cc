// Authorization at the broker under CURVE, against a real cluster: the broker lets in
// only the keys of its authorized-keys file, an agent key registers only under the id
// it is bound to, only an operator key may start, cancel or list jobs, and a key the
// broker does not know gets nothing back at all.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include <zmq.hpp>

#include "shared/channel.h"
#include "shared/curve.h"
#include "shared/protocol.h"
#include "tests/support/cluster.h"
#include "tests/support/cluster_keys.h"
#include "tests/support/log_text.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

class ControlAuth : public ClusterTest {
 protected:
  // A CURVE cluster: src1 sends, dst1 receives; "other1" has a listed key but no agent.
  void start_cluster() {
    dst_ = create_pool("dst");
    if (Status s = cluster().enable_curve({"src1", "dst1", "other1"}); !s.ok()) {
      FAIL() << s.message();
    }
    start_broker();
    start_agent({"src1", {}, {}});
    start_agent({"dst1", {dst_ + "/backup"}, {}});
    wait_alive({"src1", "dst1"});
  }

  const ClusterKeys& keys() { return *cluster().keys(); }

  // Waits (a safety net, not a timing assertion) until `log` contains `text`.
  bool wait_log(const std::string& log, const std::string& text) {
    return wait_for_text(cluster().dir() + "/" + log, text);
  }

  bool listed(const std::string& id) {
    CtlResult r = cluster().ctl({"agents"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    for (const auto& a : r.json) {
      if (a.value("id", "") == id) return true;
    }
    return false;
  }

  std::string dst_;
};

TEST_F(ControlAuth, AnAgentWithAnUnknownKeyCannotRegister) {
  start_cluster();
  auto rogue = keys().make_unlisted("rogue");
  ASSERT_TRUE(rogue.ok()) << rogue.status().message();
  start_agent({"rogue1", {}, {"--key", keys().prefix("rogue"), "--broker-key", keys().broker_public()}});
  // The ZAP handler refuses the handshake; the broker logs the key it refused.
  ASSERT_TRUE(wait_log("broker.log", "key " + rogue->public_z85 + " is not authorized there"))
      << cluster().logs();
  // An intruder that takes a listed agent's name but not its key fares no better.
  auto fake = keys().make_unlisted("fake-src1");
  ASSERT_TRUE(fake.ok());
  start_agent({"other1", {}, {"--key", keys().prefix("fake-src1"), "--broker-key",
                              keys().broker_public()}});
  ASSERT_TRUE(wait_log("broker.log", "key " + fake->public_z85 + " is not authorized there"));
  EXPECT_FALSE(listed("rogue1"));
  EXPECT_FALSE(listed("other1"));
}

TEST_F(ControlAuth, AnAgentKeyCannotRegisterAsAnotherAgent) {
  start_cluster();
  // src1's key, claiming to be other1 (whose key is listed too, so the id is known).
  start_agent({"other1", {}, {"--key", keys().prefix("src1"), "--broker-key",
                              keys().broker_public()}});
  ASSERT_TRUE(wait_log("broker.log", "the key of agent src1 cannot register as agent other1"))
      << cluster().logs();
  // The refused agent hears why.
  ASSERT_TRUE(wait_log("other1.log", "cannot register as agent other1")) << cluster().logs();
  EXPECT_FALSE(listed("other1"));
  // The real src1 is untouched.
  wait_alive({"src1", "dst1"});
}

TEST_F(ControlAuth, OnlyAnOperatorKeyMayStartCancelOrListJobs) {
  start_cluster();
  const std::vector<std::string> as_agent = {"--key", keys().prefix("src1"), "--broker-key",
                                             keys().broker_public()};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), as_agent.begin(), as_agent.end());
    return args;
  };
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"replicate", "src1:pool/x", "dst1"}, {"cancel", "1"}, {"jobs"}, {"jobs", "--all"},
           {"job", "1"}, {"watch", "1"}, {"locks"}, {"agents"}, {"snapshots", "src1:pool/x"}}) {
    CtlResult r = cluster().ctl(with(cmd));
    EXPECT_EQ(r.exit_code, 4) << cmd[0] << "\n" << r.describe();
    EXPECT_NE(r.err.find("needs an operator key"), std::string::npos) << cmd[0] << ": " << r.err;
  }
  // The operator's own key may.
  CtlResult jobs = cluster().ctl({"jobs"});
  EXPECT_EQ(jobs.exit_code, 0) << jobs.describe();
  CtlResult cancel = cluster().ctl({"cancel", "1"});
  EXPECT_EQ(cancel.exit_code, 4) << cancel.describe();  // authorized, but there is no job 1
  EXPECT_NE(cancel.err.find("no running job 1"), std::string::npos) << cancel.err;
}

TEST_F(ControlAuth, AnUnknownKeysConnectionGetsNothingBack) {
  start_cluster();
  zmq::context_t ctx;
  auto random = generate_keypair();
  ASSERT_TRUE(random.ok());
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  configure_control_socket(s);
  ASSERT_TRUE(make_curve_client(s, *random, keys().broker_keys().public_z85).ok());
  s.connect(cluster().endpoint());
  for (uint64_t id = 1; id <= 3; ++id) {
    send_control(s, "", proto::encode_request(proto::AgentsRequest{}, id));
    send_control(s, "", proto::encode_request(proto::JobsRequest{true}, id + 10));
  }
  // A negative check needs a window: nothing may come back in it.
  const auto until = std::chrono::steady_clock::now() + 1500ms;
  while (std::chrono::steady_clock::now() < until) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 100ms);
    EXPECT_FALSE(item.revents & ZMQ_POLLIN) << "the broker answered an unknown key";
    if (item.revents & ZMQ_POLLIN) break;
  }
  ASSERT_TRUE(wait_log("broker.log", "key " + random->public_z85 + " is not authorized there"));
  // A plaintext client gets nothing either (its handshake cannot even start).
  zmq::socket_t plain(ctx, zmq::socket_type::dealer);
  configure_control_socket(plain);
  plain.connect(cluster().endpoint());
  send_control(plain, "", proto::encode_request(proto::AgentsRequest{}, 1));
  zmq::pollitem_t item{plain.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, 500ms);
  EXPECT_FALSE(item.revents & ZMQ_POLLIN) << "the broker answered a plaintext client";
  // The broker is fine and serves its operator.
  CtlResult r = cluster().ctl({"agents"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.json.size(), 2u) << r.out;
}

}  // namespace
}  // namespace zps::test
