#include "ctl/commands.h"

#include "ctl/exit_codes.h"
#include "ctl/follow.h"
#include "ctl/json_view.h"
#include "ctl/text_view.h"
#include "shared/ids.h"

namespace zps::ctl {
namespace {

std::string job_label(uint64_t job) { return "job " + std::to_string(job); }

// Prints how a followed job ended (the summary, or the job object with --json) and
// returns its exit status.
int report_ended(Context& ctx, const proto::JobInfo& job) {
  if (ctx.json()) {
    ctx.print_json(job_json(job, true));
  } else if (job.state == "succeeded") {
    ctx.print(job_outcome(job) + "\n");
  }
  const int rc = exit_code_for_job(job);
  if (rc == kExitOk) return rc;
  return ctx.fail(Failure{rc, job_outcome(job)});
}

int follow(Context& ctx, uint64_t job) {
  auto client = ctx.client();
  if (!client.ok()) return ctx.fail(client.failure());
  JobFollower follower(ctx, **client, job);
  auto ended = follower.run();
  if (!ended.ok()) return ctx.fail(ended.failure());
  return report_ended(ctx, *ended);
}

}  // namespace

int exit_code_for_job(const proto::JobInfo& job) {
  if (job.state == "succeeded") return kExitOk;
  if (job.state == "failed" && !job.error_code.empty()) {
    return exit_code_for(code_from_name(job.error_code));
  }
  return kExitJobFailed;
}

Outcome<proto::ReplicateRequest> replicate_request(const ReplicateOptions& o) {
  auto source = parse_agent_dataset(o.source, false);
  if (!source.ok()) return invalid_name("invalid source", source.status());
  proto::ReplicateRequest r;
  r.source_agent = source->agent;
  r.source_dataset = source->dataset;
  if (!o.target.empty()) {
    auto target = parse_agent_dataset(o.target, true);
    if (!target.ok()) return invalid_name("invalid target", target.status());
    r.target_agent = target->agent;
    r.target_dataset = target->dataset;
  }
  r.recursive = o.recursive;
  r.force = o.force;
  return r;
}

int cmd_agents(Context& ctx) {
  auto r = ctx.ask<proto::AgentsReply>(proto::AgentsRequest{}, "cannot list agents");
  if (!r.ok()) return ctx.fail(r.failure());
  if (ctx.json()) {
    ctx.print_json(agents_json(r->agents));
  } else {
    ctx.print(agents_text(r->agents));
  }
  return kExitOk;
}

int cmd_snapshots(Context& ctx, const std::string& agent_dataset) {
  auto what = parse_agent_dataset(agent_dataset, false);
  if (!what.ok()) return ctx.fail(invalid_name("cannot list snapshots", what.status()));
  auto r = ctx.ask<proto::SnapshotsReply>(proto::SnapshotsRequest{what->agent, what->dataset},
                                          "cannot list snapshots of " + agent_dataset);
  if (!r.ok()) return ctx.fail(r.failure());
  if (ctx.json()) {
    ctx.print_json(snapshots_json(r->snapshots));
  } else {
    ctx.print(snapshots_text(agent_dataset, r->snapshots));
  }
  return kExitOk;
}

int cmd_replicate(Context& ctx, const ReplicateOptions& o) {
  auto request = replicate_request(o);
  if (!request.ok()) return ctx.fail(request.failure());
  auto r = ctx.ask<proto::JobReply>(*request, "cannot replicate " + o.source);
  if (!r.ok()) {
    // The broker answers once the source agent has accepted the job, so a slow agent
    // can look like a silent broker: the job may exist all the same.
    Failure f = r.failure();
    auto client = ctx.client();
    if (client.ok() && (*client)->stopped()) f = interrupted("");
    if (f.exit_code == kExitUnreachable || (client.ok() && (*client)->stopped())) {
      f.message += "; the job may have started anyway: see zpsctl jobs";
    }
    return ctx.fail(f);
  }
  const uint64_t job = r->job.id;
  if (o.detach) {
    if (ctx.json()) {
      ctx.print_json(detached_json(job));
    } else {
      ctx.print(job_label(job) + "\n");
    }
    return kExitOk;
  }
  return follow(ctx, job);
}

int cmd_jobs(Context& ctx, const JobsOptions& o) {
  auto r = ctx.ask<proto::JobsReply>(proto::JobsRequest{o.all}, "cannot list jobs");
  if (!r.ok()) return ctx.fail(r.failure());
  if (ctx.json()) {
    ctx.print_json(jobs_json(r->jobs));
  } else {
    ctx.print(jobs_text(r->jobs, o.all));
  }
  return kExitOk;
}

int cmd_job(Context& ctx, uint64_t job) {
  auto r = ctx.ask<proto::JobReply>(proto::JobRequest{job}, "cannot show " + job_label(job));
  if (!r.ok()) return ctx.fail(r.failure());
  if (ctx.json()) {
    ctx.print_json(job_json(r->job, true));
  } else {
    ctx.print(job_text(r->job));
  }
  return kExitOk;
}

int cmd_watch(Context& ctx, uint64_t job) { return follow(ctx, job); }

int cmd_cancel(Context& ctx, uint64_t job) {
  auto r = ctx.ask<proto::JobReply>(proto::CancelRequest{job}, "cannot cancel " + job_label(job));
  if (!r.ok()) return ctx.fail(r.failure());
  if (ctx.json()) {
    ctx.print_json(job_json(r->job, false));
  } else if (is_final_state(r->job.state)) {
    ctx.print(job_outcome(r->job) + "\n");
  } else {
    ctx.print(job_label(job) +
              ": cancel requested; the sending agent stops it (follow it with "
              "zpsctl watch " +
              std::to_string(job) + ")\n");
  }
  return kExitOk;
}

int cmd_locks(Context& ctx) {
  auto r = ctx.ask<proto::LocksReply>(proto::LocksRequest{}, "cannot list locks");
  if (!r.ok()) return ctx.fail(r.failure());
  if (ctx.json()) {
    ctx.print_json(locks_json(r->locks));
  } else {
    ctx.print(locks_text(r->locks));
  }
  return kExitOk;
}

}  // namespace zps::ctl
