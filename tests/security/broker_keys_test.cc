// A CURVE broker alone (no agents, no ZFS): which keys get an answer, and what answer.
// An operator key may list jobs; an agent key is refused with the reason; a key the
// authorized-keys file does not list, and a plaintext client, get nothing back.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "shared/process.h"
#include "tests/support/cluster_keys.h"
#include "tests/support/log_text.h"
#include "tests/support/paths.h"
#include "tests/support/raw_client.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

class BrokerKeys : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("zps-brokerkeys-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    auto keys = ClusterKeys::create(dir_.string(), {"n1"});
    ASSERT_TRUE(keys.ok()) << keys.status().message();
    keys_ = std::make_unique<ClusterKeys>(std::move(*keys));
    std::vector<std::string> argv = {bin_path("zps-broker"), "--listen", "tcp://127.0.0.1:*",
                                     "--state-dir", dir_.string() + "/state"};
    for (const auto& a : keys_->broker_args()) argv.push_back(a);
    SpawnOptions o;
    o.log_file = dir_.string() + "/broker.log";
    auto p = Process::spawn(argv, o);
    ASSERT_TRUE(p.ok()) << p.status().message();
    broker_ = std::move(*p);
    ASSERT_TRUE(wait_for_text(dir_.string() + "/state/endpoint", "\n", 30s))
        << read_text(dir_.string() + "/broker.log");
    endpoint_ = read_text(dir_.string() + "/state/endpoint");
    endpoint_.pop_back();
  }

  void TearDown() override {
    if (broker_) {
      broker_->kill(SIGTERM);
      if (!broker_->wait_for(10s)) {
        broker_->kill(SIGKILL);
        broker_->wait();
      }
    }
    if (HasFailure()) std::cerr << read_text(dir_.string() + "/broker.log");
    std::filesystem::remove_all(dir_);
  }

  ClientSecurity as(const std::string& name) {
    ClientSecurity s;
    auto own = load_secret_key(keys_->prefix(name) + ".key");
    EXPECT_TRUE(own.ok()) << own.status().message();
    if (own.ok()) s.own = *own;
    s.broker_key = keys_->broker_keys().public_z85;
    return s;
  }

  std::filesystem::path dir_;
  std::unique_ptr<ClusterKeys> keys_;
  std::unique_ptr<Process> broker_;
  std::string endpoint_;
};

TEST_F(BrokerKeys, OnlyListedKeysGetAnAnswerAndOnlyOperatorsListJobs) {
  zmq::context_t ctx;
  auto reply = raw_call(ctx, endpoint_, proto::JobsRequest{true}, as(ClusterKeys::kOperator));
  ASSERT_TRUE(reply.has_value()) << "no answer to the operator";
  EXPECT_TRUE(reply->ok) << reply->err.msg;

  reply = raw_call(ctx, endpoint_, proto::JobsRequest{true}, as("n1"));
  ASSERT_TRUE(reply.has_value()) << "no answer to the agent key";
  EXPECT_FALSE(reply->ok);
  EXPECT_EQ(reply->err.code, "refused");
  EXPECT_NE(reply->err.msg.find("needs an operator key"), std::string::npos) << reply->err.msg;

  // A hello under another agent's id.
  proto::Hello hello;
  hello.agent = "n2";
  hello.host = "h";
  reply = raw_call(ctx, endpoint_, hello, as("n1"));
  ASSERT_TRUE(reply.has_value());
  EXPECT_FALSE(reply->ok);
  EXPECT_NE(reply->err.msg.find("the key of agent n1 cannot register as agent n2"),
            std::string::npos)
      << reply->err.msg;

  // Unlisted and plaintext: nothing comes back (a negative check needs a window).
  auto stranger = keys_->make_unlisted("stranger");
  ASSERT_TRUE(stranger.ok());
  ClientSecurity unlisted = as("stranger");
  EXPECT_FALSE(raw_call(ctx, endpoint_, proto::JobsRequest{true}, unlisted, 1500ms).has_value());
  EXPECT_FALSE(raw_call(ctx, endpoint_, proto::JobsRequest{true}, {}, 1000ms).has_value());
  EXPECT_TRUE(wait_for_text(dir_.string() + "/broker.log",
                            "CURVE key " + stranger->public_z85 + " is not authorized there"));
  // And the broker still serves its operator.
  reply = raw_call(ctx, endpoint_, proto::AgentsRequest{}, as(ClusterKeys::kOperator));
  ASSERT_TRUE(reply.has_value());
  EXPECT_TRUE(reply->ok);
}

}  // namespace
}  // namespace zps::test
