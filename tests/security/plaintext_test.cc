// When the programs refuse to start: without keys on an endpoint that is not loopback
// (unless --insecure), with a secret key file that others can read, and with half a
// CURVE configuration. Each refusal happens before any socket exists: the tests use
// TEST-NET addresses (192.0.2.0/24) that no packet may be sent to, and check that the
// broker did not even create its state directory.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "shared/keys.h"
#include "shared/process.h"
#include "tests/support/paths.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

struct Ran {
  int code = -1;
  std::string err;
};

Ran run_program(const std::vector<std::string>& argv) {
  RunOptions o;
  o.timeout = 30s;  // a safety net: each of these exits at once
  auto out = run(argv, o);
  EXPECT_TRUE(out.ok()) << out.status().message();
  if (!out.ok()) return {};
  return {out->status.code, out->out + out->err};
}

class Plaintext : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("zps-plaintext-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A key pair PREFIX.{key,pub} in the test directory.
  std::string keypair(const std::string& name) {
    auto keys = generate_keypair();
    EXPECT_TRUE(keys.ok());
    const std::string prefix = dir_.string() + "/" + name;
    EXPECT_TRUE(write_keypair(prefix, *keys).ok());
    return prefix;
  }

  std::filesystem::path dir_;
};

TEST_F(Plaintext, BrokerOnANonLoopbackAddressWithoutKeysRefusesBeforeBinding) {
  const std::string state = dir_.string() + "/state";
  for (const std::string listen : {"tcp://192.0.2.1:5555", "tcp://0.0.0.0:5555", "tcp://*:5555"}) {
    Ran r = run_program({bin_path("zps-broker"), "--listen", listen, "--state-dir", state});
    EXPECT_EQ(r.code, 1) << listen << ": " << r.err;
    EXPECT_NE(r.err.find("refusing to start zps-broker without encryption"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("zpsctl keygen"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--insecure"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("listening"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(state)) << "the broker opened its state before the check";
}

TEST_F(Plaintext, AgentWithANonLoopbackBrokerOrDataAddressRefuses) {
  Ran r = run_program({bin_path("zps-agent"), "--broker", "tcp://192.0.2.1:6830", "--id", "n1"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("refusing to start zps-agent without encryption"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("192.0.2.1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("zpsctl keygen"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("starting"), std::string::npos) << r.err;
  // The broker is local, but senders would stream zfs data to a network address.
  r = run_program({bin_path("zps-agent"), "--broker", "tcp://127.0.0.1:1", "--id", "n1",
                   "--data-address", "192.0.2.7"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("192.0.2.7"), std::string::npos) << r.err;
}

TEST_F(Plaintext, ZpsctlWithANonLoopbackBrokerRefusesWithoutSendingAnything) {
  Ran r = run_program({bin_path("zpsctl"), "--broker", "tcp://192.0.2.1:6830", "agents"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("refusing to start zpsctl without encryption"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--key PREFIX --broker-key"), std::string::npos) << r.err;
  // The environment counts like the flags.
  r = run_program({"/usr/bin/env", "ZPS_BROKER=tcp://192.0.2.1:6830", bin_path("zpsctl"), "jobs"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("without encryption"), std::string::npos) << r.err;
}

TEST_F(Plaintext, ASecretKeyFileOthersCanReadIsRefusedByEveryProgram) {
  const std::string broker = keypair("broker");
  const std::string agent = keypair("agent");
  const std::string authorized = dir_.string() + "/authorized_keys";
  {
    FILE* f = std::fopen(authorized.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  for (const std::string& prefix : {broker, agent}) {
    ASSERT_EQ(::chmod((prefix + ".key").c_str(), 0644), 0);
  }
  Ran r = run_program({bin_path("zps-broker"), "--listen", "tcp://127.0.0.1:0", "--state-dir",
                       dir_.string() + "/state", "--key", broker, "--authorized-keys", authorized});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_.string() + "/state"));
  r = run_program({bin_path("zps-agent"), "--broker", "tcp://127.0.0.1:1", "--id", "n1", "--key",
                   agent, "--broker-key", broker + ".pub"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
  r = run_program({bin_path("zpsctl"), "--broker", "tcp://127.0.0.1:1", "--key", agent + ".key",
                   "--broker-key", broker + ".pub", "agents"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
}

TEST_F(Plaintext, HalfACurveConfigurationIsRefused) {
  const std::string broker = keypair("broker");
  Ran r = run_program({bin_path("zps-broker"), "--listen", "tcp://127.0.0.1:0", "--state-dir",
                       dir_.string() + "/state", "--key", broker});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("--key and --authorized-keys go together"), std::string::npos) << r.err;
  r = run_program({bin_path("zpsctl"), "--key", broker, "agents"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("needs both --key"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace zps::test
