// Broken data pipes (issue 5, item 4): a TCP proxy (tests/support/tcp_proxy.h) sits
// between the sending agent and the receiving agent's data ports and breaks the first
// hop's stream once, part way: it cuts the connection, drops a chunk of bytes, flips
// one byte, or stalls. Each time the receiver must abort that hop (zfs recv killed,
// nothing committed, no half-received dataset left), the sender must retry it, and the
// job must end with the target equal to the source, guid by guid and file by file.
//
// Wiring: the receiver advertises 127.0.0.2 and binds 127.0.0.1 (both loopback); the
// proxy listens on 127.0.0.2 on every port of the receiver's data range and forwards to
// 127.0.0.1 on the same port.
//
// Prints "PIPEFAULT mode=.. fault=.. failed_hops=.. reason=.." for the lead's notes.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <ostream>
#include <string>
#include <vector>

#include "tests/support/cluster.h"
#include "tests/support/replica_check.h"
#include "tests/support/tcp_proxy.h"

namespace zps::test {
namespace {

using namespace std::chrono_literals;

// Small enough to keep a bad stream short, large enough for the retry to happen well
// within the job; the stall timeout also bounds how long a broken hop takes to fail.
const std::vector<std::string> kSenderFlags = {"--hop-retries", "6", "--retry-backoff-ms", "200",
                                               "--stall-timeout-ms", "3000"};
const std::vector<std::string> kReceiverFlags = {"--data-address", "127.0.0.2", "--data-bind",
                                                 "127.0.0.1", "--stall-timeout-ms", "3000"};

// The first hop carries a 6 MiB file; a fault "mid" lands after 3 MiB of it, well inside
// a data frame's payload (frames are 256 KiB), in the file's data; "early" lands in the
// first frame, among the stream's first records (zfs recv may choke on it before the
// pipe's hash is checked).
constexpr uint64_t kMid = (3u << 20) + 100000;
constexpr uint64_t kEarly = 3000;

struct Case {
  ProxyFault fault;
  uint64_t after;
  const char* name;
};

// So ctest lists the case by name rather than as the struct's bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class PipeFaultTest : public ClusterTest, public ::testing::WithParamInterface<Case> {
 protected:
  std::string pool(const std::string& tag) {
    auto p = rig().create_pool(tag);
    if (!p.ok()) throw RigError("creating a test pool: " + p.status().message());
    return *p;
  }
};

TEST_P(PipeFaultTest, HopIsAbortedRetriedAndTheTargetEqualsTheSource) {
  const std::string src_pool = pool("src");
  const std::string dst_pool = pool("dst");
  start_broker();
  start_agent({"src1", {}, kSenderFlags});
  start_agent({"dst1", {dst_pool + "/backup"}, kReceiverFlags});
  wait_alive({"src1", "dst1"});

  ProxyOptions po;
  po.port_lo = cluster().data_port_lo("dst1");
  po.port_hi = static_cast<uint16_t>(po.port_lo + Cluster::kDataPortsPerAgent - 1);
  po.fault = GetParam().fault;
  po.after_bytes = GetParam().after;
  po.drop_bytes = 10000;
  auto proxy = TcpProxy::start(po);
  ASSERT_TRUE(proxy.ok()) << proxy.status().message();

  const std::string src = src_pool + "/pipe";
  create_dataset(src);
  write_random_file(src, "big", 6u << 20, 1);
  snapshot(src, "s1");
  write_random_file(src, "more", 2u << 20, 2);
  snapshot(src, "s2");
  write_file(src, "note", "the last one\n");
  snapshot(src, "s3");

  const CtlResult r = cluster().ctl({"replicate", "src1:" + src, "dst1"}, true, 180s);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.json.value("state", ""), "succeeded") << r.describe();
  ASSERT_TRUE((*proxy)->fault_fired()) << "the stream never reached the fault's point";

  // The broken hop shows as failed, its retry (and the rest) as succeeded.
  int failed = 0, succeeded = 0;
  std::string hop_error;
  for (const auto& h : r.json["hops"]) {
    if (h.value("state", "") == "failed") {
      ++failed;
      if (hop_error.empty()) hop_error = h.value("error", "");
    }
    if (h.value("state", "") == "succeeded") ++succeeded;
  }
  EXPECT_GE(failed, 1) << r.describe();
  EXPECT_EQ(succeeded, 3) << r.describe();
  bool retried = false;
  for (const auto& w : r.json.value("warnings", nlohmann::json::array())) {
    retried = retried || w.get<std::string>().find("retrying") != std::string::npos;
  }
  EXPECT_TRUE(retried) << "the job does not say it retried\n" << r.describe();

  // Why the receiver gave up, in its own log.
  const auto aborted = log_lines_with(cluster().dir() + "/dst1.log", "aborted");
  const auto recv_failed = log_lines_with(cluster().dir() + "/dst1.log", "zfs recv into");
  EXPECT_FALSE(aborted.empty() && recv_failed.empty())
      << "the receiver's log does not say why the hop ended";
  const std::string reason = !aborted.empty() ? aborted.front() : recv_failed.front();
  if (GetParam().fault == ProxyFault::kStall) {
    EXPECT_NE(reason.find("stalled"), std::string::npos) << reason;
  }

  const std::string dst = dst_pool + "/backup/src1/" + src;
  EXPECT_EQ(snapshot_difference(rig(), src, dst), "");
  EXPECT_EQ(file_difference(rig(), src, dst), "");
  EXPECT_EQ(partial_receives(rig(), dst_pool), std::vector<std::string>{});

  std::cout << "PIPEFAULT mode=" << GetParam().name << " fault='"
            << (*proxy)->fault_description() << "' failed_hops=" << failed
            << " hop_error='" << hop_error << "' receiver='" << reason << "'\n";
}

INSTANTIATE_TEST_SUITE_P(Faults, PipeFaultTest,
                         ::testing::Values(Case{ProxyFault::kCut, kMid, "cut"},
                                           Case{ProxyFault::kDrop, kMid, "drop"},
                                           Case{ProxyFault::kFlip, kMid, "flip"},
                                           Case{ProxyFault::kStall, kMid, "stall"},
                                           Case{ProxyFault::kDrop, kEarly, "drop_early"},
                                           Case{ProxyFault::kFlip, kEarly, "flip_early"}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace zps::test
