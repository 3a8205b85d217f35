// Hostile dataset and agent names against a real cluster: `../x`, a leading '-', a
// space, ';', a newline, shell syntax, an over-long name, each as a source and as a
// target. zpsctl refuses them with exit status 4 and says why; a client that skips
// zpsctl's checks and sends the same replicate request to the broker itself is refused
// by the broker; and in neither case does any agent run a zfs command for them.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "shared/channel.h"
#include "shared/protocol.h"
#include "tests/support/cluster.h"
#include "tests/support/raw_client.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

struct Hostile {
  std::string name;  // dataset (or agent) name
  std::string why;   // a fragment of the refusal that says what is wrong with it
};

// The broker's reply to one replicate request sent straight to it, as a client that
// does not check names would.
std::optional<proto::Envelope> raw_replicate(zmq::context_t& ctx, const std::string& endpoint,
                                             const proto::ReplicateRequest& req) {
  return raw_call(ctx, endpoint, req, {}, 10s);
}

class HostileNames : public ClusterTest {};

TEST_F(HostileNames, AreRefusedWithExit4BeforeAnyZfsCommandRuns) {
  const std::string src = create_pool("src");
  const std::string dst = create_pool("dst");
  const std::string root = dst + "/backup";
  start_broker();
  start_agent({"src1", {}, {}});
  start_agent({"dst1", {root}, {}});
  wait_alive({"src1", "dst1"});
  const std::string data = src + "/data";
  create_dataset(data);
  snapshot(data, "s1");

  // Relative to a pool ("" means the name as it is).
  auto under = [](const std::string& base, const std::string& rest) {
    return base.empty() ? rest : base + "/" + rest;
  };
  const std::vector<Hostile> names = {
      {"../x", "'..' component"},
      {"@@/../x", "'..' component"},  // @@ is replaced by the pool: pool/../x
      {"-o", "starting with '-'"},
      {"@@/-o", "starting with '-'"},
      {"@@/a b", "a space"},
      {"@@/a;b", "the character ';'"},
      {"@@/x;rm -rf ~", "the character ';'"},
      {"@@/$(reboot)", "the character '$'"},
      {"@@/a\nb", "\\x0a"},
      {"@@/" + std::string(300, 'a'), "bytes long"},
  };
  auto resolve = [&](const std::string& n, const std::string& base) {
    return n.rfind("@@", 0) == 0 ? under(base, n.substr(3)) : n;
  };

  const size_t src_before = cluster().zfs_commands("src1").size();
  const size_t dst_before = cluster().zfs_commands("dst1").size();
  std::vector<std::string> fragments;  // what must appear in no zfs command line
  zmq::context_t ctx;
  for (const Hostile& h : names) {
    const std::string as_source = resolve(h.name, src);
    const std::string as_target = resolve(h.name, root);
    if (as_source != h.name) {  // a bare "-o" would match zfs's own options in the log
      fragments.push_back(as_source);
      fragments.push_back(as_target);
    }

    CtlResult r = cluster().ctl({"replicate", "src1:" + as_source, "dst1:" + root + "/t"});
    EXPECT_EQ(r.exit_code, 4) << "source " << as_source << "\n" << r.describe();
    EXPECT_NE(r.err.find("invalid source"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(h.why), std::string::npos) << "source " << as_source << ": " << r.err;

    r = cluster().ctl({"replicate", "src1:" + data, "dst1:" + as_target});
    EXPECT_EQ(r.exit_code, 4) << "target " << as_target << "\n" << r.describe();
    EXPECT_NE(r.err.find("invalid target"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(h.why), std::string::npos) << "target " << as_target << ": " << r.err;

    // The same requests straight to the broker.
    proto::ReplicateRequest req{"src1", as_source, "dst1", root + "/t", false, false};
    auto reply = raw_replicate(ctx, cluster().endpoint(), req);
    ASSERT_TRUE(reply.has_value()) << "no answer from the broker";
    EXPECT_FALSE(reply->ok);
    EXPECT_EQ(reply->err.code, "invalid_argument") << reply->err.msg;
    EXPECT_NE(reply->err.msg.find(h.why), std::string::npos) << reply->err.msg;
    req = {"src1", data, "dst1", as_target, true, true};
    reply = raw_replicate(ctx, cluster().endpoint(), req);
    ASSERT_TRUE(reply.has_value()) << "no answer from the broker";
    EXPECT_FALSE(reply->ok);
    EXPECT_EQ(reply->err.code, "invalid_argument") << reply->err.msg;
    EXPECT_NE(reply->err.msg.find(h.why), std::string::npos) << reply->err.msg;
  }

  // Hostile agent names, and a source whose placed target would be over-long.
  // ("--" ends the options: without it, zpsctl takes a leading '-' for an option and
  // answers with a usage error, exit 2.)
  for (const std::string agent : {"../x", "-o", "a b", "a;b"}) {
    CtlResult r = cluster().ctl({"replicate", "--", agent + ":" + data, "dst1:" + root + "/t"});
    EXPECT_EQ(r.exit_code, 4) << "agent " << agent << "\n" << r.describe();
    EXPECT_NE(r.err.find("agent id"), std::string::npos) << r.err;
    r = cluster().ctl({"replicate", "--", "src1:" + data, agent});
    EXPECT_EQ(r.exit_code, 4) << "agent " << agent << "\n" << r.describe();
    EXPECT_NE(r.err.find("agent id"), std::string::npos) << r.err;
  }
  const std::string long_source = src + "/" + std::string(254 - src.size(), 'l');
  CtlResult placed = cluster().ctl({"replicate", "src1:" + long_source});
  EXPECT_EQ(placed.exit_code, 4) << placed.describe();
  EXPECT_NE(placed.err.find("placed target"), std::string::npos) << placed.err;
  EXPECT_NE(placed.err.find("give an explicit TARGET"), std::string::npos) << placed.err;

  // No job ran, and no zfs command named any of them.
  CtlResult jobs = cluster().ctl({"jobs", "--all"});
  EXPECT_EQ(jobs.exit_code, 0) << jobs.describe();
  EXPECT_TRUE(jobs.json.is_array() && jobs.json.empty()) << jobs.out;
  for (const std::string agent : {"src1", "dst1"}) {
    const auto cmds = cluster().zfs_commands(agent);
    for (size_t i = agent == std::string("src1") ? src_before : dst_before; i < cmds.size(); ++i) {
      EXPECT_EQ(cmds[i].find(" send "), std::string::npos) << agent << " ran " << cmds[i];
      EXPECT_EQ(cmds[i].find(" recv "), std::string::npos) << agent << " ran " << cmds[i];
      for (const auto& f : fragments) {
        EXPECT_EQ(cmds[i].find(f), std::string::npos) << agent << " ran " << cmds[i];
      }
      EXPECT_EQ(cmds[i].find(long_source), std::string::npos) << agent << " ran " << cmds[i];
    }
  }
}

}  // namespace
}  // namespace zps::test
