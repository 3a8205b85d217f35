// The receiver's data socket under CURVE, against a real cluster: while a real hop is
// held open (the sender's `zfs send` waits at a gate), intruders connect to the hop's
// data endpoint with a random key, with the key of another authorized agent, and with
// the sender's own key but a wrong token. The first two never complete a handshake,
// the third one's frames are refused, and the real transfer then completes intact.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "shared/curve.h"
#include "shared/pipe.h"
#include "tests/support/cluster.h"
#include "tests/support/cluster_keys.h"
#include "tests/support/log_text.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

// The zfs the agents would run, from PATH.
std::string zfs_on_path() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  for (std::string d; std::getline(dirs, d, ':');) {
    const std::string candidate = d + "/zfs";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "zfs";
}

// A `zfs` for the sending agent whose `send` waits until the gate file exists.
std::string write_gated_zfs(const std::string& dir, const std::string& gate) {
  const std::string script = dir + "/gated-zfs";
  std::ofstream out(script);
  out << "#!/bin/sh\n"
      << "if [ \"$1\" = send ]; then\n"
      << "  while [ ! -e '" << gate << "' ]; do sleep 0.05; done\n"
      << "fi\n"
      << "exec '" << zfs_on_path() << "' \"$@\"\n";
  out.close();
  ::chmod(script.c_str(), 0755);
  return script;
}

class DataAuth : public ClusterTest {
 protected:
  // Waits (a safety net, not a timing assertion) until `log` matches `re`; returns the
  // first capture group.
  std::string wait_log(const std::string& log, const std::string& re) {
    const std::regex pattern(re);
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < until) {
      std::smatch m;
      const std::string text = read_text(cluster().dir() + "/" + log);
      if (std::regex_search(text, m, pattern)) return m.size() > 1 ? m[1].str() : m[0].str();
      std::this_thread::sleep_for(50ms);
    }
    return {};
  }

  // The same for a literal fragment.
  bool wait_text(const std::string& log, const std::string& text) {
    return wait_for_text(cluster().dir() + "/" + log, text);
  }
};

TEST_F(DataAuth, WrongKeysAndAWrongTokenAreRefusedWhileTheRealTransferCompletes) {
  const std::string src = create_pool("src");
  const std::string dst = create_pool("dst");
  ASSERT_TRUE(cluster().enable_curve({"src1", "dst1", "other1"}).ok());
  const std::string gate = rig().dir() + "/gate";
  const std::string zfs = write_gated_zfs(rig().dir(), gate);
  start_broker();
  start_agent({"src1", {}, {"--zfs", zfs}});
  start_agent({"dst1", {dst + "/backup"}, {}});
  wait_alive({"src1", "dst1"});

  const std::string data = src + "/data";
  create_dataset(data);
  write_random_file(data, "payload", 4 << 20, 7);
  snapshot(data, "s1");
  auto job = cluster().ctl_async({"replicate", "src1:" + data, "dst1"});
  ASSERT_NE(job, nullptr);

  // The receiver has prepared the hop and listens; the sender's zfs send waits.
  const std::string endpoint =
      wait_log("dst1.log", "receiving \\S+@s1 from src1 \\(job \\d+ hop 1[^)]*\\) on (tcp://\\S+)");
  ASSERT_FALSE(endpoint.empty()) << cluster().logs();
  const ClusterKeys& keys = *cluster().keys();
  auto dst_key = load_public_key(keys.prefix("dst1") + ".pub");
  ASSERT_TRUE(dst_key.ok());

  zmq::context_t ctx;
  pipe::Options intruder;
  intruder.linger = 0ms;
  intruder.stall_timeout = 2s;
  // An intruder's pipe to the hop's endpoint with `key` and a token of its own making.
  std::vector<std::unique_ptr<pipe::PipeSender>> intruders;
  auto intrude = [&](const KeyPair& key) -> pipe::PipeSender* {
    intruder.configure_socket = curve_client_setup(key, *dst_key);
    auto p = pipe::PipeSender::connect(ctx, endpoint, pipe::make_token(), intruder);
    EXPECT_TRUE(p.ok()) << p.status().message();
    if (!p.ok()) return nullptr;
    intruders.push_back(std::move(*p));
    return intruders.back().get();
  };
  // 1. A key nobody listed; 2. the key of an authorized agent that is not this hop's
  // sender. Neither completes a handshake.
  auto random = generate_keypair();
  ASSERT_TRUE(random.ok());
  auto other = load_secret_key(keys.prefix("other1") + ".key");
  ASSERT_TRUE(other.ok());
  for (const KeyPair& key : {*random, *other}) {
    ASSERT_NE(intrude(key), nullptr);
    EXPECT_TRUE(wait_text("dst1.log", "CURVE key " + key.public_z85 + " is not authorized there"))
        << cluster().logs();
  }
  // 3. The sender's own key with a token of its own making: its frames are dropped.
  auto sender = load_secret_key(keys.prefix("src1") + ".key");
  ASSERT_TRUE(sender.ok());
  pipe::PipeSender* c = intrude(*sender);
  ASSERT_NE(c, nullptr);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string junk(64 * 1024, 'x');
  ASSERT_EQ(::write(fds[1], junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  ::close(fds[1]);
  std::atomic<bool> cancel{false};
  (void)c->stream_from(fds[0], cancel);
  ::close(fds[0]);
  EXPECT_TRUE(wait_text("dst1.log", "refused a frame (wrong token)")) << cluster().logs();

  // Open the gate: the real hop goes through, intact.
  std::ofstream(gate) << "open\n";
  CtlResult r = Cluster::finish(*job);
  ASSERT_EQ(r.exit_code, 0) << r.describe() << cluster().logs();
  EXPECT_EQ(r.json.value("state", ""), "succeeded") << r.describe();
  const std::string target = dst + "/backup/src1/" + data;
  EXPECT_EQ(guid_of(data + "@s1"), guid_of(target + "@s1"));
  expect_same_files(data, target);
  intruders.clear();
}

}  // namespace
}  // namespace zps::test
