#include "broker/registry.h"

#include <gtest/gtest.h>

namespace zps::broker {
namespace {

using std::chrono::milliseconds;

proto::Hello hello(const char* agent, uint64_t instance) {
  proto::Hello h;
  h.agent = agent;
  h.host = "host";
  h.instance = instance;
  return h;
}

class RegistryTest : public ::testing::Test {
 protected:
  AgentRegistry registry{milliseconds(1000), 3};
  Clock::time_point t0 = Clock::now();
};

TEST_F(RegistryTest, SecondProcessWithTheSameIdIsRefusedWhileTheFirstHeartbeats) {
  registry.on_hello(hello("dst1", 1), "peer-a", "10.0.0.2", t0);
  Status s = registry.admit(hello("dst1", 2), "peer-b", t0 + milliseconds(500));
  EXPECT_EQ(s.code(), Code::kRefused);
  EXPECT_NE(s.message().find("dst1"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("--id"), std::string::npos) << s.message();
}

TEST_F(RegistryTest, RestartedAgentIsTakenOnceTheOldProcessFellSilent) {
  registry.on_hello(hello("dst1", 1), "peer-a", "10.0.0.2", t0);
  EXPECT_TRUE(registry.admit(hello("dst1", 2), "peer-b", t0 + milliseconds(1600)).ok());
}

TEST_F(RegistryTest, SameProcessReconnectingIsTaken) {
  registry.on_hello(hello("dst1", 1), "peer-a", "10.0.0.2", t0);
  EXPECT_TRUE(registry.admit(hello("dst1", 1), "peer-b", t0 + milliseconds(10)).ok());
  EXPECT_TRUE(registry.admit(hello("dst1", 1), "peer-a", t0 + milliseconds(10)).ok());
}

TEST_F(RegistryTest, DeadAgentIsReplacedAndSilentOnesAreSweptDead) {
  registry.on_hello(hello("dst1", 1), "peer-a", "10.0.0.2", t0);
  auto dead = registry.sweep(t0 + milliseconds(3100));
  ASSERT_EQ(dead, std::vector<std::string>{"dst1"});
  EXPECT_EQ(registry.find_alive("dst1"), nullptr);
  EXPECT_FALSE(registry.id_of_peer("peer-a").has_value());
  EXPECT_TRUE(registry.admit(hello("dst1", 2), "peer-b", t0 + milliseconds(3200)).ok());
  EXPECT_TRUE(registry.on_hello(hello("dst1", 2), "peer-b", "10.0.0.3", t0 + milliseconds(3200)));
  EXPECT_EQ(registry.id_of_peer("peer-b"), "dst1");
}

}  // namespace
}  // namespace zps::broker
