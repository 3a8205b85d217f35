// zpsctl: output builders (JSON shapes, tables, progress lines), exit statuses, local
// name checks, and whole commands against a fake broker on loopback (and the real
// binary against an endpoint where nothing listens).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "ctl/app.h"
#include "ctl/client.h"
#include "ctl/commands.h"
#include "ctl/context.h"
#include "ctl/exit_codes.h"
#include "ctl/follow.h"
#include "ctl/format.h"
#include "ctl/json_view.h"
#include "ctl/progress.h"
#include "ctl/table.h"
#include "ctl/text_view.h"
#include "shared/channel.h"
#include "shared/process.h"
#include "shared/protocol.h"
#include "tests/support/paths.h"

namespace zps::ctl {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// ---- Sample data ----------------------------------------------------------------------

proto::HopInfo hop(uint32_t n, const std::string& from, const std::string& to, uint64_t bytes) {
  proto::HopInfo h;
  h.n = n;
  h.dataset = "zones/test";
  h.from = from;
  h.to = to;
  h.bytes = bytes;
  h.state = "succeeded";
  h.seconds = 0.08;
  return h;
}

proto::JobInfo sample_job(const std::string& state) {
  proto::JobInfo j;
  j.id = 7;
  j.state = state;
  j.source = "src1:zones/test";
  j.target = "dst1:backup/src1/zones/test";
  j.created_ms = 1700000000000;
  if (state != "running" && state != "queued") j.ended_ms = j.created_ms + 900;
  j.hops = {hop(1, "", "a", 1024 * 1024), hop(2, "a", "b", 200 * 1024)};
  j.hops_done = 2;
  j.bytes = 1024 * 1024 + 200 * 1024;
  return j;
}

proto::AgentInfo sample_agent() {
  proto::AgentInfo a;
  a.id = "dst1";
  a.host = "hostb";
  a.version = "0.1.0";
  a.alive = true;
  a.recv_roots = {"backup", "tank/recv"};
  a.active_recvs = 1;
  a.max_recvs = 4;
  a.peak_recvs = 3;
  a.running_jobs = 0;
  a.data_address = "10.0.0.2";
  a.pools = {{"backup", 1ull << 40}};
  a.last_seen_ms = 300;
  return a;
}

// ---- Formatting -------------------------------------------------------------------------

TEST(CtlFormatTest, SizesAreHumanReadable) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(1258291), "1.2 MiB");
  EXPECT_EQ(human_bytes(5ull << 30), "5.0 GiB");
  EXPECT_EQ(human_rate(15.0 * 1024 * 1024), "15.0 MiB/s");
}

TEST(CtlFormatTest, DurationsAreShortAndExact) {
  EXPECT_EQ(format_seconds(5), "5 s");
  EXPECT_EQ(format_seconds(0.5), "0.5 s");
  EXPECT_EQ(format_seconds(0.08), "0.08 s");
  EXPECT_EQ(format_seconds(0.9), "0.9 s");
  EXPECT_EQ(format_seconds(12.34), "12.3 s");
  EXPECT_EQ(format_seconds(125), "2 min 5 s");
  EXPECT_EQ(format_seconds(60), "1 min");
  EXPECT_EQ(format_seconds(7200), "2 h");
  EXPECT_EQ(format_seconds(3720), "1 h 2 min");
  EXPECT_EQ(format_age_ms(400), "0.4 s ago");
}

TEST(CtlFormatTest, HopsAreDescribedLikeZfsSend) {
  EXPECT_EQ(describe_send("", "now1"), "full @now1");
  EXPECT_EQ(describe_send("now2", "8550"), "-i @now2 @8550");
  EXPECT_EQ(describe_send("zones/base@s1", "c1"), "-i zones/base@s1 @c1");
  EXPECT_EQ(describe_hop("zones/test", 3, 7, "now2", "8550"), "zones/test hop 3/7 -i @now2 @8550");
  EXPECT_EQ(describe_hop("zones/test", 3, 0, "now2", "8550"), "zones/test hop 3 -i @now2 @8550");
}

TEST(CtlFormatTest, HopDoneLineShowsBytesTimeAndRate) {
  proto::JobEvent e;
  e.kind = "hop_done";
  e.dataset = "zones/test";
  e.hop = 3;
  e.of = 7;
  e.from = "now2";
  e.to = "8550";
  e.bytes = 1258291;
  e.rate = 15.0 * 1024 * 1024;
  EXPECT_EQ(ProgressPrinter::hop_done_line(7, e, 0.08),
            "job 7: zones/test hop 3/7 -i @now2 @8550: 1.2 MiB in 0.08 s (15.0 MiB/s)");
}

TEST(CtlProgressTest, TerminalGetsOneRewrittenLine) {
  std::ostringstream out, err;
  Io io{out, err, true, 60, nullptr};
  ProgressPrinter p(io, false, 7);
  proto::JobEvent e;
  e.kind = "progress";
  e.dataset = "zones/test";
  e.hop = 1;
  e.of = 2;
  e.to = "a";
  e.bytes = 3 * 1024 * 1024;
  e.rate = 1024 * 1024;
  p.on_event(e);
  EXPECT_EQ(err.str(), "\rjob 7: zones/test hop 1/2 full @a: 3.0 MiB (1.0 MiB/s)\x1b[K");
  err.str("");
  e.dataset = std::string(100, 'x');
  p.on_event(e);
  EXPECT_EQ(err.str().size(), 1 + 59 + 3u) << "cut to the terminal's width";
  err.str("");
  p.warning("w");
  EXPECT_EQ(err.str(), "\r\x1b[Kjob 7: warning: w\n");
  p.warning("w");
  EXPECT_EQ(err.str(), "\r\x1b[Kjob 7: warning: w\n") << "each warning once";
  EXPECT_EQ(out.str(), "") << "stdout stays clean on a terminal";
}

// ---- Tables -----------------------------------------------------------------------------

TEST(CtlTableTest, ColumnsAlignUnderTheirHeaders) {
  Table t({{"ID", Table::Align::kRight}, {"NAME"}, {"X"}});
  t.add_row({"7", "zones/test", "a"});
  t.add_row({"123", "z", ""});
  EXPECT_EQ(t.render(),
            " ID  NAME        X\n"
            "  7  zones/test  a\n"
            "123  z\n");
}

TEST(CtlTableTest, ShortRowsArePadded) {
  Table t({{"A"}, {"B"}});
  t.add_row({"x"});
  EXPECT_EQ(t.render(), "A  B\nx\n");
}

TEST(CtlTextTest, AgentsTableHasTheContractHeaders) {
  const std::string text = agents_text({sample_agent()});
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "ID    HOST   ALIVE  ROOTS             RECVS  JOBS  SEEN");
  EXPECT_NE(text.find("dst1  hostb  yes    backup,tank/recv    1/4     0  0.3 s ago"),
            std::string::npos)
      << text;
}

TEST(CtlTextTest, ListsHaveHeadersOrSayTheyAreEmpty) {
  EXPECT_EQ(snapshots_text("n1:zones/test", {{"a", 18446744073709551615ull, 12}}),
            "NAME                  GUID  CREATETXG\n"
            "a     18446744073709551615         12\n");
  EXPECT_EQ(snapshots_text("n1:zones/test", {}), "n1:zones/test has no snapshots\n");
  const std::string jobs = jobs_text({sample_job("failed")}, true);
  EXPECT_EQ(jobs.substr(0, jobs.find('\n')),
            "ID  STATE   SOURCE           TARGET                       HOPS    BYTES  ERROR");
  EXPECT_NE(jobs_text({}, false).find("no running jobs"), std::string::npos);
  proto::LockInfo l{"dst1", "backup/src1/zones/test", true, 7, 12};
  EXPECT_EQ(locks_text({l}),
            "AGENT  DATASET                 RECURSIVE  JOB  FENCE\n"
            "dst1   backup/src1/zones/test  yes          7     12\n");
  EXPECT_EQ(locks_text({}), "no locks held\n");
}

TEST(CtlTextTest, JobShowsHeaderLinesThenHops) {
  proto::JobInfo j = sample_job("failed");
  j.error = "target backup/x has snapshots newer than @a: run with --force to roll back";
  j.error_code = "target_newer";
  const std::string text = job_text(j);
  EXPECT_EQ(text.substr(0, text.find('\n')), "job 7:   failed");
  EXPECT_NE(text.find("source   src1:zones/test\n"), std::string::npos) << text;
  EXPECT_NE(text.find("error    target backup/x has snapshots newer than @a: run with --force to "
                      "roll back [target_newer]\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("HOP  DATASET     SEND          BYTES    TIME  STATE\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("  1  zones/test  full @a     1.0 MiB  0.08 s  succeeded\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  2  zones/test  -i @a @b  200.0 KiB  0.08 s  succeeded\n"),
            std::string::npos)
      << text;
}

TEST(CtlTextTest, OutcomeLines) {
  EXPECT_EQ(job_outcome(sample_job("succeeded")),
            "job 7 succeeded: src1:zones/test -> dst1:backup/src1/zones/test, 2 hops, 1.2 MiB in "
            "0.9 s");
  proto::JobInfo none = sample_job("succeeded");
  none.hops.clear();
  none.hops_done = 0;
  none.bytes = 0;
  EXPECT_EQ(job_outcome(none),
            "job 7 succeeded: dst1:backup/src1/zones/test is already up to date with "
            "src1:zones/test (nothing to send)");
  proto::JobInfo failed = sample_job("failed");
  failed.error = "no common snapshot";
  EXPECT_EQ(job_outcome(failed), "job 7 failed: no common snapshot");
}

// ---- JSON shapes ------------------------------------------------------------------------

TEST(CtlJsonTest, AgentsHaveTheContractFields) {
  const json doc = json::parse(agents_json({sample_agent()}).dump());
  ASSERT_TRUE(doc.is_array());
  ASSERT_EQ(doc.size(), 1u);
  const json& a = doc[0];
  EXPECT_EQ(a["id"], "dst1");
  EXPECT_EQ(a["host"], "hostb");
  EXPECT_TRUE(a["alive"].is_boolean());
  EXPECT_EQ(a["recv_roots"], json::array({"backup", "tank/recv"}));
  EXPECT_EQ(a["active_recvs"], 1);
  EXPECT_EQ(a["max_recvs"], 4);
  EXPECT_EQ(a["peak_recvs"], 3);
  for (const char* k : {"version", "running_jobs", "data_address", "last_seen_ms", "pools"}) {
    EXPECT_TRUE(a.contains(k)) << k;
  }
  EXPECT_EQ(a["pools"][0]["free"], 1ull << 40);
}

TEST(CtlJsonTest, SnapshotGuidIsADecimalString) {
  const json doc = json::parse(snapshots_json({{"now", 18446744073709551615ull, 4242}}).dump());
  ASSERT_TRUE(doc.is_array());
  EXPECT_EQ(doc[0]["name"], "now");
  ASSERT_TRUE(doc[0]["guid"].is_string());
  EXPECT_EQ(doc[0]["guid"], "18446744073709551615");
  ASSERT_TRUE(doc[0]["createtxg"].is_number_unsigned());
  EXPECT_EQ(doc[0]["createtxg"], 4242);
}

TEST(CtlJsonTest, JobObjectHasStateAndHops) {
  proto::JobInfo j = sample_job("succeeded");
  j.warnings = {"snapshot @x vanished"};
  const json doc = json::parse(job_json(j, true).dump());
  EXPECT_EQ(doc["id"], 7);
  EXPECT_EQ(doc["state"], "succeeded");
  EXPECT_EQ(doc["source"], "src1:zones/test");
  EXPECT_EQ(doc["target"], "dst1:backup/src1/zones/test");
  EXPECT_TRUE(doc["error"].is_string());
  for (const char* k : {"recursive", "force", "warnings", "error_code", "bytes", "hops_done",
                        "created_ms", "ended_ms"}) {
    EXPECT_TRUE(doc.contains(k)) << k;
  }
  ASSERT_EQ(doc["hops"].size(), 2u);
  const json& h = doc["hops"][1];
  EXPECT_EQ(h["dataset"], "zones/test");
  EXPECT_EQ(h["from"], "a");
  EXPECT_EQ(h["to"], "b");
  EXPECT_EQ(h["bytes"], 200 * 1024);
  EXPECT_EQ(h["state"], "succeeded");
  EXPECT_EQ(h["n"], 2);
  EXPECT_TRUE(h["seconds"].is_number());
}

TEST(CtlJsonTest, JobsAreJobObjectsWithoutHops) {
  const json doc = json::parse(jobs_json({sample_job("running")}).dump());
  ASSERT_TRUE(doc.is_array());
  EXPECT_EQ(doc[0]["state"], "running");
  EXPECT_FALSE(doc[0].contains("hops"));
}

TEST(CtlJsonTest, LocksAndDetach) {
  const json locks = json::parse(locks_json({{"dst1", "backup/x", true, 7, 12}}).dump());
  EXPECT_EQ(locks,
            json::parse(
                R"([{"agent":"dst1","dataset":"backup/x","recursive":true,"job":7,"fence":12}])"));
  EXPECT_EQ(json::parse(detached_json(9).dump()), json::parse(R"({"job":9})"));
}

// ---- Exit statuses ----------------------------------------------------------------------

TEST(CtlExitTest, RefusalsAreFourOtherErrorsOne) {
  for (Code c : {Code::kLockHeld, Code::kInvalidArgument, Code::kDiverged, Code::kTargetNewer,
                 Code::kNotFound, Code::kOutsideRoot, Code::kRefused}) {
    EXPECT_EQ(exit_code_for(c), kExitRefused) << code_name(c);
  }
  for (Code c : {Code::kZfsFailed, Code::kTimeout, Code::kUnavailable, Code::kInternal}) {
    EXPECT_EQ(exit_code_for(c), kExitJobFailed) << code_name(c);
  }
}

TEST(CtlExitTest, EndedJobs) {
  EXPECT_EQ(exit_code_for_job(sample_job("succeeded")), kExitOk);
  proto::JobInfo j = sample_job("failed");
  j.error_code = "zfs_failed";
  EXPECT_EQ(exit_code_for_job(j), kExitJobFailed);
  j.error_code = "diverged";
  EXPECT_EQ(exit_code_for_job(j), kExitRefused);
  j.error_code = "";
  EXPECT_EQ(exit_code_for_job(j), kExitJobFailed);
  EXPECT_EQ(exit_code_for_job(sample_job("cancelled")), kExitJobFailed);
}

TEST(CtlExitTest, BrokerErrorsKeepTheirMessage) {
  Failure f = broker_error("cannot replicate n1:zones/test",
                           Status(Code::kLockHeld, "backup/x is locked by job 3"));
  EXPECT_EQ(f.exit_code, kExitRefused);
  EXPECT_EQ(f.message, "cannot replicate n1:zones/test: backup/x is locked by job 3");
  EXPECT_EQ(unreachable("tcp://h:1", 0.5).exit_code, kExitUnreachable);
}

// ---- Local name checks ------------------------------------------------------------------

TEST(CtlNamesTest, ReplicateRequestCarriesTheParsedNames) {
  ReplicateOptions o;
  o.source = "node1:zones/test";
  o.target = "node2";
  o.recursive = true;
  auto r = replicate_request(o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->source_agent, "node1");
  EXPECT_EQ(r->source_dataset, "zones/test");
  EXPECT_EQ(r->target_agent, "node2");
  EXPECT_EQ(r->target_dataset, "");
  EXPECT_TRUE(r->recursive);
  o.target = "node2:backup/x";
  EXPECT_EQ(replicate_request(o)->target_dataset, "backup/x");
  o.target = "";
  EXPECT_EQ(replicate_request(o)->target_agent, "");
}

TEST(CtlNamesTest, HostileNamesAreRefusedWithExitFour) {
  const std::string long_name = "node1:pool/" + std::string(300, 'a');
  for (const std::string& bad :
       {std::string("node1:../x"), std::string("node1:pool/../x"), std::string("node1:-o"),
        std::string("-o:pool/x"), std::string("node1:pool/a b"), std::string("node1:pool;rm -rf /"),
        std::string("node1:pool/x@snap"), std::string("zones/test"), std::string("node1:"),
        std::string("no de:pool"), long_name}) {
    ReplicateOptions o;
    o.source = bad;
    auto r = replicate_request(o);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.failure().exit_code, kExitRefused) << bad;
    EXPECT_NE(r.failure().message.find("invalid source"), std::string::npos) << r.failure().message;
  }
  ReplicateOptions o;
  o.source = "node1:pool/x";
  o.target = "node2:pool/../y";
  ASSERT_FALSE(replicate_request(o).ok());
  EXPECT_NE(replicate_request(o).failure().message.find("'pool/../y'"), std::string::npos)
      << replicate_request(o).failure().message;
}

// ---- Whole commands in-process ----------------------------------------------------------

// A loopback TCP port where nothing listens (bound, then closed).
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string dead_endpoint() { return "tcp://127.0.0.1:" + std::to_string(free_port()); }

struct RunResult {
  int rc = -1;
  std::string out;
  std::string err;
};

RunResult run_in_process(std::vector<std::string> args, const std::atomic<bool>* stop = nullptr) {
  std::ostringstream out, err;
  static const std::atomic<bool> never{false};
  RunResult r;
  r.rc = run_cli(args, Io{out, err, false, 80, stop != nullptr ? stop : &never});
  r.out = out.str();
  r.err = err.str();
  return r;
}

TEST(CtlCliTest, RefusedNamesNeverReachTheBroker) {
  // A dead endpoint: had zpsctl tried the broker, the exit status would be 3.
  const std::string ep = dead_endpoint();
  for (const char* bad : {"node1:../x", "node1:-o", "node1:a b", "node1:a;b"}) {
    auto r = run_in_process({"--broker", ep, "--timeout", "0.2", "--json", "snapshots", bad});
    EXPECT_EQ(r.rc, kExitRefused) << bad << ": " << r.err;
    EXPECT_EQ(r.out, "") << bad;
    EXPECT_EQ(r.err.rfind("zpsctl: ", 0), 0u) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    auto rep = run_in_process({"--broker", ep, "--timeout", "0.2", "replicate", "n1:pool/x", bad});
    EXPECT_EQ(rep.rc, kExitRefused) << bad << ": " << rep.err;
  }
}

TEST(CtlCliTest, UsageErrorsAreExitTwo) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{},
                                             {"bogus"},
                                             {"agents", "--bogus"},
                                             {"snapshots"},
                                             {"replicate"},
                                             {"job", "abc"},
                                             {"job", "0"},
                                             {"watch", "-5"},
                                             {"--timeout", "-1", "agents"}}) {
    auto r = run_in_process(args);
    EXPECT_EQ(r.rc, kExitUsage) << (args.empty() ? "" : args[0]) << ": " << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("zpsctl: ", 0), 0u) << r.err;
  }
  EXPECT_NE(run_in_process({"bogus"}).err.find("unknown command 'bogus'"), std::string::npos);
  auto help = run_in_process({"--help"});
  EXPECT_EQ(help.rc, kExitOk);
  EXPECT_NE(help.out.find("replicate"), std::string::npos);
}

TEST(CtlCliTest, UnreachableBrokerIsExitThreeAndNamesTheEndpoint) {
  const std::string ep = dead_endpoint();
  const auto start = std::chrono::steady_clock::now();
  auto r = run_in_process({"--broker", ep, "--timeout", "0.3", "--json", "agents"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(r.rc, kExitUnreachable);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "zpsctl: no answer from the broker at " + ep +
                       " within 0.3 s; check that zps-broker runs there, or set --broker / "
                       "ZPS_BROKER\n");
}

// ---- The real binary --------------------------------------------------------------------

TEST(CtlBinaryTest, UnreachableUsageAndRefusedExitStatuses) {
  const std::string zpsctl = test::bin_path("zpsctl");
  const std::string ep = dead_endpoint();
  auto down = run({zpsctl, "--broker", ep, "--timeout", "0.5", "agents"});
  ASSERT_TRUE(down.ok()) << down.status().message();
  EXPECT_EQ(down->status.code, kExitUnreachable);
  EXPECT_NE(down->err.find("no answer from the broker at " + ep), std::string::npos) << down->err;
  EXPECT_NE(down->err.find("ZPS_BROKER"), std::string::npos) << down->err;

  auto usage = run({zpsctl, "agents", "--no-such-flag"});
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->status.code, kExitUsage);

  auto refused = run({zpsctl, "--broker", ep, "--json", "replicate", "node1:../etc", "node2"});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status.code, kExitRefused);
  EXPECT_EQ(refused->out, "");
  EXPECT_NE(refused->err.find("'../etc'"), std::string::npos) << refused->err;
}

// ---- A fake broker ----------------------------------------------------------------------

// A ROUTER on loopback that hands each decoded message to a handler on its own thread;
// the handler answers through reply() / notify().
class FakeBroker {
 public:
  using Handler = std::function<void(FakeBroker&, const std::string& peer, const proto::Envelope&)>;

  explicit FakeBroker(Handler handler) : handler_(std::move(handler)) {
    socket_ = zmq::socket_t(ctx_, zmq::socket_type::router);
    configure_control_socket(socket_);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeBroker() {
    stop_ = true;
    thread_.join();
  }

  const std::string& endpoint() const { return endpoint_; }

  template <class M>
  void reply(const std::string& peer, uint64_t re, const M& m) {
    send_control(socket_, peer, proto::encode_reply(re, m));
  }
  void error(const std::string& peer, uint64_t re, Code code, const std::string& msg) {
    send_control(socket_, peer, proto::encode_error(re, Status(code, msg)));
  }
  void notify(const std::string& peer, const proto::JobEvent& ev) {
    send_control(socket_, peer, proto::encode_notice(ev));
  }
  int count(const std::string& type) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& t : seen_) n += t == type ? 1 : 0;
    return n;
  }
  // When set, requests are read but not answered (a broker that went silent).
  std::atomic<bool> silent{false};

 private:
  void loop() {
    while (!stop_) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, milliseconds(10));
      while (auto in = recv_control(socket_, true)) {
        if (!in->message.ok()) continue;
        {
          std::lock_guard<std::mutex> lock(mu_);
          seen_.push_back(in->message->type);
        }
        if (!silent) handler_(*this, in->peer, *in->message);
      }
    }
  }

  zmq::context_t ctx_;
  zmq::socket_t socket_;
  std::string endpoint_;
  Handler handler_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> seen_;
};

proto::JobEvent event(const std::string& kind, uint32_t n, const std::string& from,
                      const std::string& to, uint64_t bytes, const proto::JobInfo& state) {
  proto::JobEvent e;
  e.job = 7;
  e.kind = kind;
  e.dataset = "zones/test";
  e.hop = n;
  e.of = 2;
  e.from = from;
  e.to = to;
  e.bytes = bytes;
  e.rate = 10.0 * 1024 * 1024;
  e.state = state;
  e.state.hops.clear();
  return e;
}

// Answers like the broker for a job that runs two hops and then ends as `final`.
FakeBroker::Handler two_hop_job(proto::JobInfo final) {
  return [final](FakeBroker& b, const std::string& peer, const proto::Envelope& e) {
    proto::JobInfo running = final;
    running.state = "running";
    running.hops.clear();
    running.hops_done = 0;
    running.bytes = 0;
    running.ended_ms = 0;
    if (e.type == "replicate") {
      b.reply(peer, e.id, proto::JobReply{running});
    } else if (e.type == "watch") {
      b.reply(peer, e.id, proto::JobReply{running});
      b.notify(peer, event("hop_started", 1, "", "a", 0, running));
      running.hops_done = 1;
      running.bytes = 1024 * 1024;
      b.notify(peer, event("hop_done", 1, "", "a", 1024 * 1024, running));
      proto::JobEvent w = event("warning", 0, "", "", 0, running);
      w.message = "snapshot zones/test@old vanished during the sync; skipped";
      b.notify(peer, w);
      b.notify(peer, event("hop_done", 2, "a", "b", 200 * 1024, running));
      proto::JobEvent end = event("ended", 0, "", "", 0, final);
      end.message = final.error;
      b.notify(peer, end);
    } else if (e.type == "job") {
      b.reply(peer, e.id, proto::JobReply{final});
    }
  };
}

TEST(CtlFakeBrokerTest, AgentsTableAndJson) {
  FakeBroker broker([](FakeBroker& b, const std::string& peer, const proto::Envelope& e) {
    if (e.type == "agents") b.reply(peer, e.id, proto::AgentsReply{{sample_agent()}});
  });
  auto text = run_in_process({"--broker", broker.endpoint(), "agents"});
  EXPECT_EQ(text.rc, 0) << text.err;
  EXPECT_EQ(text.out, agents_text({sample_agent()}));
  auto doc = run_in_process({"--broker", broker.endpoint(), "agents", "--json"});
  EXPECT_EQ(doc.rc, 0) << doc.err;
  EXPECT_EQ(json::parse(doc.out)[0]["id"], "dst1");
}

TEST(CtlFakeBrokerTest, StaleRepliesAreIgnored) {
  FakeBroker broker([](FakeBroker& b, const std::string& peer, const proto::Envelope& e) {
    b.error(peer, e.id + 1000, Code::kInternal, "a reply to someone else's request");
    b.reply(peer, e.id, proto::LocksReply{{{"dst1", "backup/x", false, 3, 9}}});
  });
  auto r = run_in_process({"--broker", broker.endpoint(), "--json", "locks"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)[0]["fence"], 9);
}

TEST(CtlFakeBrokerTest, BrokerErrorsMapToRefusedOrFailed) {
  FakeBroker broker([](FakeBroker& b, const std::string& peer, const proto::Envelope& e) {
    if (e.type == "replicate") {
      b.error(peer, e.id, Code::kLockHeld,
              "dst1:backup/x is locked by job 3 (replicating src1:x); wait for it or cancel it");
    } else if (e.type == "snapshots") {
      b.error(peer, e.id, Code::kZfsFailed, "zfs list failed: pool is suspended");
    }
  });
  auto locked = run_in_process(
      {"--broker", broker.endpoint(), "--json", "replicate", "src1:x", "dst1:backup/x"});
  EXPECT_EQ(locked.rc, kExitRefused);
  EXPECT_EQ(locked.out, "");
  EXPECT_EQ(locked.err,
            "zpsctl: cannot replicate src1:x: dst1:backup/x is locked by job 3 (replicating "
            "src1:x); wait for it or cancel it\n");
  auto zfs = run_in_process({"--broker", broker.endpoint(), "snapshots", "src1:x"});
  EXPECT_EQ(zfs.rc, kExitJobFailed);
  EXPECT_EQ(zfs.err,
            "zpsctl: cannot list snapshots of src1:x: zfs list failed: pool is suspended\n");
}

TEST(CtlFakeBrokerTest, ReplicateFollowsTheJobAndSummarizes) {
  FakeBroker broker(two_hop_job(sample_job("succeeded")));
  auto r = run_in_process({"--broker", broker.endpoint(), "replicate", "src1:zones/test"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out,
            "job 7 running: src1:zones/test -> dst1:backup/src1/zones/test\n"
            "job 7: zones/test hop 1/2 full @a: 1.0 MiB in 0.1 s (10.0 MiB/s)\n"
            "job 7: warning: snapshot zones/test@old vanished during the sync; skipped\n"
            "job 7: zones/test hop 2/2 -i @a @b: 200.0 KiB in 0.02 s (10.0 MiB/s)\n"
            "job 7 succeeded: src1:zones/test -> dst1:backup/src1/zones/test, 2 hops, 1.2 MiB in "
            "0.9 s\n");
  EXPECT_EQ(r.err, "");
}

TEST(CtlFakeBrokerTest, ReplicateJsonPrintsOnlyTheFinalJob) {
  FakeBroker broker(two_hop_job(sample_job("succeeded")));
  auto r =
      run_in_process({"--broker", broker.endpoint(), "--json", "replicate", "src1:zones/test"});
  EXPECT_EQ(r.rc, 0) << r.err;
  const json doc = json::parse(r.out);  // throws (fails the test) unless it is one document
  EXPECT_EQ(doc["state"], "succeeded");
  EXPECT_EQ(doc["hops"].size(), 2u);
}

TEST(CtlFakeBrokerTest, DetachPrintsTheJobId) {
  FakeBroker broker(two_hop_job(sample_job("succeeded")));
  auto r = run_in_process({"--broker", broker.endpoint(), "replicate", "src1:x", "--detach"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out, "job 7\n");
  auto j =
      run_in_process({"--broker", broker.endpoint(), "--json", "replicate", "src1:x", "--detach"});
  EXPECT_EQ(json::parse(j.out), json::parse(R"({"job":7})"));
  EXPECT_EQ(broker.count("watch"), 0);
}

TEST(CtlFakeBrokerTest, FailedJobsExitOneOrFourWithTheError) {
  proto::JobInfo failed = sample_job("failed");
  failed.error = "target dst1:backup/src1/zones/test has snapshots newer than @a: run with --force";
  failed.error_code = "target_newer";
  FakeBroker refused(two_hop_job(failed));
  auto r = run_in_process({"--broker", refused.endpoint(), "replicate", "src1:zones/test"});
  EXPECT_EQ(r.rc, kExitRefused);
  EXPECT_EQ(r.err, "zpsctl: job 7 failed: " + failed.error + "\n");

  failed.error_code = "zfs_failed";
  failed.error = "zfs recv exited 1: cannot receive: out of space";
  FakeBroker broken(two_hop_job(failed));
  auto b = run_in_process({"--broker", broken.endpoint(), "--json", "watch", "7"});
  EXPECT_EQ(b.rc, kExitJobFailed);
  EXPECT_EQ(json::parse(b.out)["error"], failed.error);
  // With --json, warnings go to stderr too (stdout holds only the document).
  EXPECT_EQ(b.err,
            "job 7: warning: snapshot zones/test@old vanished during the sync; skipped\n"
            "zpsctl: job 7 failed: " +
                failed.error + "\n");
}

TEST(CtlFakeBrokerTest, UpToDateTargetSaysSo) {
  proto::JobInfo done = sample_job("succeeded");
  done.hops.clear();
  done.hops_done = 0;
  done.bytes = 0;
  FakeBroker broker([done](FakeBroker& b, const std::string& peer, const proto::Envelope& e) {
    if (e.type == "watch" || e.type == "job") b.reply(peer, e.id, proto::JobReply{done});
  });
  auto r = run_in_process({"--broker", broker.endpoint(), "watch", "7"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("already up to date"), std::string::npos) << r.out;
}

// ---- The follower's robustness ----------------------------------------------------------

struct FollowRun {
  Outcome<proto::JobInfo> result = Failure{};
  std::string out;
  std::string err;
};

FollowRun follow_with(const std::string& endpoint, FollowTiming timing,
                      const std::atomic<bool>* stop = nullptr) {
  static const std::atomic<bool> never{false};
  std::ostringstream out, err;
  GlobalOptions g;
  g.broker = endpoint;
  g.timeout_s = 0.2;
  Context ctx(g, Io{out, err, false, 80, stop != nullptr ? stop : &never});
  auto client = ctx.client();
  EXPECT_TRUE(client.ok());
  JobFollower f(ctx, **client, 7, timing);
  FollowRun r;
  r.result = f.run();
  r.out = out.str();
  r.err = err.str();
  return r;
}

TEST(CtlFollowTest, RefreshesFindTheEndWithoutAnyEvent) {
  std::atomic<int> asked{0};
  FakeBroker broker([&asked](FakeBroker& b, const std::string& peer, const proto::Envelope& e) {
    const int n = ++asked;
    proto::JobInfo j = sample_job(n >= 4 ? "succeeded" : "running");
    j.hops_done = static_cast<uint32_t>(n);  // progress that no event reports
    b.reply(peer, e.id, proto::JobReply{j});
  });
  auto r = follow_with(broker.endpoint(), {milliseconds(50), milliseconds(2000)});
  ASSERT_TRUE(r.result.ok()) << r.result.failure().message;
  EXPECT_EQ(r.result->state, "succeeded");
  EXPECT_GE(broker.count("job"), 2);
  // The refresh showed hops no event reported: the watch was sent again.
  EXPECT_GE(broker.count("watch"), 2);
}

TEST(CtlFollowTest, GivesUpOnASilentBrokerWithExitThree) {
  FakeBroker broker([](FakeBroker& b, const std::string& peer, const proto::Envelope& e) {
    b.reply(peer, e.id, proto::JobReply{sample_job("running")});
    b.silent = true;  // answers the watch, then nothing more
  });
  auto r = follow_with(broker.endpoint(), {milliseconds(50), milliseconds(600)});
  ASSERT_FALSE(r.result.ok());
  EXPECT_EQ(r.result.failure().exit_code, kExitUnreachable);
  EXPECT_NE(r.result.failure().message.find(broker.endpoint()), std::string::npos);
  EXPECT_NE(r.result.failure().message.find("zpsctl job 7"), std::string::npos);
  EXPECT_NE(r.err.find("still trying"), std::string::npos) << r.err;
}

TEST(CtlFollowTest, ReWatchesWhenTheBrokerAnswersAgain) {
  std::atomic<int> asked{0};
  FakeBroker broker([&asked](FakeBroker& b, const std::string& peer, const proto::Envelope& e) {
    const int n = ++asked;
    // Requests 2 to 9 go unanswered, longer than the 0.2 s timeout: like a restart.
    if (n >= 2 && n < 10) return;
    proto::JobInfo j = sample_job(n >= 14 ? "succeeded" : "running");
    j.hops_done = 0;
    j.bytes = 0;
    b.reply(peer, e.id, proto::JobReply{j});
  });
  auto r = follow_with(broker.endpoint(), {milliseconds(50), milliseconds(5000)});
  ASSERT_TRUE(r.result.ok()) << r.result.failure().message;
  EXPECT_GE(broker.count("watch"), 2);
  EXPECT_NE(r.err.find("still trying"), std::string::npos) << r.err;
}

TEST(CtlFollowTest, CtrlCLeavesTheJobRunning) {
  FakeBroker broker([](FakeBroker& b, const std::string& peer, const proto::Envelope& e) {
    b.reply(peer, e.id, proto::JobReply{sample_job("running")});
  });
  std::atomic<bool> stop{false};
  std::thread press([&stop] {
    std::this_thread::sleep_for(milliseconds(200));
    stop = true;
  });
  auto r = follow_with(broker.endpoint(), {milliseconds(50), milliseconds(5000)}, &stop);
  press.join();
  ASSERT_FALSE(r.result.ok());
  EXPECT_EQ(r.result.failure().exit_code, kExitJobFailed);
  EXPECT_EQ(r.result.failure().message,
            "interrupted; job 7 continues on the broker; follow it with zpsctl watch 7");
}

}  // namespace
}  // namespace zps::ctl
