// zpsctl's commands, one function each: ask the broker, print the answer (a table, or
// one JSON document with --json), return the exit status. Errors are printed once, as
// "zpsctl: ..." on stderr.
//
// Thread-safety: one thread.
#pragma once

#include <cstdint>
#include <string>

#include "ctl/context.h"
#include "ctl/failure.h"
#include "ctl/options.h"
#include "shared/protocol.h"

namespace zps::ctl {

int cmd_agents(Context& ctx);
int cmd_snapshots(Context& ctx, const std::string& agent_dataset);
int cmd_replicate(Context& ctx, const ReplicateOptions& options);
int cmd_jobs(Context& ctx, const JobsOptions& options);
int cmd_job(Context& ctx, uint64_t job);
int cmd_watch(Context& ctx, uint64_t job);
int cmd_cancel(Context& ctx, uint64_t job);
int cmd_locks(Context& ctx);

// The replicate request for the operator's arguments; names are checked here, before
// anything is sent (a refusal, exit 4).
Outcome<proto::ReplicateRequest> replicate_request(const ReplicateOptions& options);
// The exit status for a job that has ended: 0 succeeded, 4 failed with a refusal
// (diverged, target newer, lock held ...: nothing was changed), else 1.
int exit_code_for_job(const proto::JobInfo& job);

}  // namespace zps::ctl
