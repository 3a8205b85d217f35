#include "ctl/app.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <iostream>

#include "ctl/commands.h"
#include "ctl/exit_codes.h"
#include "ctl/keygen.h"
#include "ctl/options.h"
#include "shared/signals.h"
#include "shared/version.h"

namespace zps::ctl {
namespace {

// Every option the command line can set, filled in by CLI11.
struct Parsed {
  GlobalOptions global;
  ReplicateOptions replicate;
  JobsOptions jobs;
  KeygenOptions keygen;
  std::string agent_dataset;
  uint64_t job = 0;
};

struct Commands {
  CLI::App* agents;
  CLI::App* snapshots;
  CLI::App* replicate;
  CLI::App* jobs;
  CLI::App* job;
  CLI::App* watch;
  CLI::App* cancel;
  CLI::App* locks;
  CLI::App* keygen;
};

CLI::App* add_command(CLI::App& app, const char* name, const char* help) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->fallthrough();  // global flags may follow the command: zpsctl jobs --json
  return sub;
}

void add_job_id(CLI::App* sub, uint64_t& job) {
  // Checked here because CLI11 would wrap "-5" (and overflow) into a huge unsigned id.
  const CLI::Validator job_id(
      [](std::string& s) -> std::string {
        uint64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc() && end == s.data() + s.size() && v > 0) return "";
        return "job id '" + s + "' is not a positive 64-bit number (see zpsctl jobs)";
      },
      "");
  sub->add_option("ID", job, "job id (see zpsctl jobs)")->required()->check(job_id);
}

Commands build(CLI::App& app, Parsed& p) {
  app.set_version_flag("--version", std::string("zpsctl ") + kVersion);
  app.add_option("--broker", p.global.broker, "broker endpoint")
      ->envname("ZPS_BROKER")
      ->capture_default_str();
  app.add_flag("--json", p.global.json, "print one JSON document on stdout");
  app.add_option("--key", p.global.security.key,
                 "your key pair: PREFIX.key from 'zpsctl keygen --out PREFIX' (turns on "
                 "CURVE; needs --broker-key)")
      ->envname("ZPS_KEY");
  app.add_option("--broker-key", p.global.security.broker_key,
                 "the broker's public key: its .pub file or the 40-character key")
      ->envname("ZPS_BROKER_KEY");
  app.add_flag("--insecure", p.global.security.insecure,
               "talk to a broker that is not on loopback without keys (plaintext)");
  app.add_option("--timeout", p.global.timeout_s, "seconds to wait for each broker reply")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 86400.0));
  app.require_subcommand(1);

  Commands c{};
  c.agents = add_command(app, "agents", "registered agents, liveness, load, roots");
  c.snapshots = add_command(app, "snapshots", "a dataset's snapshots, as the agent sees them");
  c.snapshots->add_option("AGENT:DATASET", p.agent_dataset, "e.g. node1:zones/test")->required();
  c.replicate = add_command(app, "replicate", "replicate a dataset's snapshots to another agent");
  c.replicate->add_option("SOURCE", p.replicate.source, "AGENT:DATASET to send")->required();
  c.replicate->add_option("TARGET", p.replicate.target,
                          "AGENT:DATASET, or AGENT, or omitted: the broker chooses "
                          "<receive root>/<source agent>/<source dataset>");
  c.replicate->add_flag("-r,--recursive", p.replicate.recursive, "also the descendant datasets");
  c.replicate->add_flag("--force", p.replicate.force, "roll back a diverged target (zfs recv -F)");
  c.replicate->add_flag("--detach", p.replicate.detach, "print the job id and return at once");
  c.jobs = add_command(app, "jobs", "running (or all) jobs");
  c.jobs->add_flag("--all", p.jobs.all, "include finished jobs");
  c.job = add_command(app, "job", "one job with its hops");
  add_job_id(c.job, p.job);
  c.watch = add_command(app, "watch", "follow a job's progress until it ends");
  add_job_id(c.watch, p.job);
  c.cancel = add_command(app, "cancel", "cancel a running job");
  add_job_id(c.cancel, p.job);
  c.locks = add_command(app, "locks", "held locks");
  c.keygen = add_command(app, "keygen",
                         "write a CURVE key pair (PREFIX.key, PREFIX.pub); needs no broker");
  c.keygen->add_option("--out", p.keygen.out, "file prefix, e.g. /etc/zpsend/node1")
      ->capture_default_str();
  return c;
}

int dispatch(const Commands& c, const Parsed& p, Context& ctx) {
  if (c.agents->parsed()) return cmd_agents(ctx);
  if (c.snapshots->parsed()) return cmd_snapshots(ctx, p.agent_dataset);
  if (c.replicate->parsed()) return cmd_replicate(ctx, p.replicate);
  if (c.jobs->parsed()) return cmd_jobs(ctx, p.jobs);
  if (c.job->parsed()) return cmd_job(ctx, p.job);
  if (c.watch->parsed()) return cmd_watch(ctx, p.job);
  if (c.cancel->parsed()) return cmd_cancel(ctx, p.job);
  if (c.locks->parsed()) return cmd_locks(ctx);
  if (c.keygen->parsed()) return cmd_keygen(ctx, p.keygen);
  return kExitUsage;  // require_subcommand(1) makes this unreachable
}

// CLI11 reports an unknown command as a missing one; say what was not understood.
std::string usage_error(CLI::App& app, const CLI::ParseError& e) {
  const std::vector<std::string> rest = app.remaining();
  if (app.get_subcommands().empty() && !rest.empty()) {
    std::string names;
    for (const CLI::App* sub : app.get_subcommands({})) names += " " + sub->get_name();
    return "unknown command '" + rest.front() + "' (commands:" + names + ")";
  }
  return e.what();
}

size_t terminal_width(int fd) {
  struct winsize ws {};
  if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace

int run_cli(const std::vector<std::string>& args, Io io) {
  CLI::App app{"zpsctl: control zpsend replication", "zpsctl"};
  Parsed p;
  const Commands commands = build(app, p);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e, io.out, io.err);  // --help, --version
    io.err << "zpsctl: " << usage_error(app, e) << "; see zpsctl --help" << std::endl;
    return kExitUsage;
  }
  Context ctx(p.global, io);
  return dispatch(commands, p, ctx);
}

int run_cli(int argc, char** argv) {
  const std::atomic<bool>& stop = install_stop_signals();
  Io io{std::cout, std::cerr, isatty(STDERR_FILENO) == 1, terminal_width(STDERR_FILENO), &stop};
  return run_cli(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc), io);
}

}  // namespace zps::ctl
