#include "agent/job_runner.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <csignal>
#include <future>
#include <thread>

#include "agent/verdict_watch.h"
#include "shared/curve.h"
#include "shared/names.h"

namespace zps::agent {
namespace {

using Ms = std::chrono::milliseconds;

constexpr Ms kTargetStateTimeout{std::chrono::minutes(5)};
constexpr Ms kSettleTimeout{std::chrono::seconds(15)};
constexpr Ms kProgressInterval{500};
// How often a hop asks a busy receiver again: a slot frees when one of its receives
// ends, which takes at least a hop's time.
constexpr Ms kBusyPoll{500};

// Failures worth another try: the pipe broke or stalled, a peer was briefly away.
// Refusals and zfs's own errors are not. A busy receiver is no failure at all: the hop
// waits for a slot (run_hop) and never spends an attempt.
bool retryable(const Status& s) {
  switch (s.code()) {
    case Code::kTimeout:
    case Code::kUnavailable:
    case Code::kProtocol:
    case Code::kIoError:
      return true;
    default:
      return false;
  }
}

std::string hop_text(const HopPlan& plan) {
  switch (plan.kind) {
    case HopKind::kFull: return "full @" + plan.to;
    case HopKind::kIncremental: return "-i @" + plan.from + " @" + plan.to;
    case HopKind::kCloneIncremental: return "-i " + plan.from + " @" + plan.to;
    case HopKind::kUpToDate: break;
  }
  return "up to date";
}

SendSpec send_spec(const DatasetTask& task, const HopPlan& plan) {
  SendSpec spec;
  spec.to = task.source + "@" + plan.to;
  if (plan.kind == HopKind::kIncremental) spec.from = task.source + "@" + plan.from;
  if (plan.kind == HopKind::kCloneIncremental) spec.from = plan.from;
  return spec;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

std::vector<std::vector<size_t>> task_dependencies(const std::vector<DatasetTask>& tasks) {
  std::vector<std::vector<size_t>> deps(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    const std::string parent(parent_dataset(tasks[i].source));
    const std::string origin_ds =
        tasks[i].origin ? std::string(split_snapshot(*tasks[i].origin).first) : std::string();
    for (size_t j = 0; j < tasks.size(); ++j) {
      if (i == j) continue;
      if (tasks[j].source == parent || (!origin_ds.empty() && tasks[j].source == origin_ds)) {
        deps[i].push_back(j);
      }
    }
  }
  return deps;
}

JobRunner::JobRunner(Zfs& zfs, zmq::context_t& ctx, const SenderConfig& config,
                     proto::JobStart job, uint64_t start_request)
    : zfs_(zfs), ctx_(ctx), config_(config), job_(std::move(job)), start_request_(start_request) {}

void JobRunner::run() {
  BusClient bus(ctx_, config_.bus_endpoint);
  auto tasks = list_tasks();
  if (!tasks.ok()) {
    bus.send(proto::encode_error(start_request_, tasks.status()));
    finished_.store(true);
    return;
  }
  bus.send(proto::encode_reply(start_request_, proto::Empty{}));
  spdlog::info("job {}: replicating {} ({} dataset(s)) to {}:{}", job_.job, job_.source_dataset,
               tasks->size(), job_.target_agent, job_.target_dataset);
  Status outcome = run_tasks(*tasks);
  end_job(bus, outcome);
  finished_.store(true);
}

Result<std::vector<DatasetTask>> JobRunner::list_tasks() {
  Status valid = validate_dataset_name(job_.source_dataset);
  if (valid.ok()) valid = validate_dataset_name(job_.target_dataset);
  if (!valid.ok()) return valid;
  auto exists = zfs_.exists(job_.source_dataset);
  if (!exists.ok()) return exists.status();
  if (!*exists) {
    return Status(Code::kNotFound, "source dataset " + job_.source_dataset +
                                       " does not exist on agent " + config_.agent_id +
                                       " (see zpsctl snapshots " + config_.agent_id + ":" +
                                       job_.source_dataset + ")");
  }
  std::vector<DatasetTask> tasks;
  if (!job_.recursive) {
    auto origin = zfs_.origin(job_.source_dataset);
    if (!origin.ok()) return origin.status();
    tasks.push_back({job_.source_dataset, job_.target_dataset, *origin});
    return tasks;
  }
  auto all = zfs_.list_descendants(job_.source_dataset);
  if (!all.ok()) return all.status();
  for (const auto& d : *all) {
    const std::string suffix = d.name.substr(job_.source_dataset.size());
    const std::string target = job_.target_dataset + suffix;
    if (Status s = validate_dataset_name(target); !s.ok()) {
      return s.with_context("target for " + d.name);
    }
    tasks.push_back({d.name, target, d.origin});
  }
  return tasks;
}

// Runs the tasks with up to config_.parallel in flight, each once its dependencies
// (parent, origin) have succeeded. The first failure stops new work.
Status JobRunner::run_tasks(const std::vector<DatasetTask>& tasks) {
  const auto deps = task_dependencies(tasks);
  enum class St { kWaiting, kRunning, kDone, kFailed };
  std::vector<St> state(tasks.size(), St::kWaiting);
  std::mutex mu;
  std::condition_variable cv;
  Status first_error;

  auto next_ready = [&]() -> std::optional<size_t> {
    for (size_t i = 0; i < tasks.size(); ++i) {
      if (state[i] != St::kWaiting) continue;
      bool ready = true;
      for (size_t d : deps[i]) ready = ready && state[d] == St::kDone;
      if (ready) return i;
    }
    return std::nullopt;
  };
  auto all_settled = [&] {
    for (auto s : state) {
      if (s == St::kRunning) return false;
    }
    return true;
  };

  auto worker = [&] {
    BusClient bus(ctx_, config_.bus_endpoint);
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      std::optional<size_t> i;
      cv.wait(lock, [&] {
        i = first_error.ok() && !cancel_.load() ? next_ready() : std::nullopt;
        return i.has_value() || all_settled();
      });
      if (!i) return;
      state[*i] = St::kRunning;
      lock.unlock();
      Status s = sync_dataset(bus, tasks[*i]);
      lock.lock();
      state[*i] = s.ok() ? St::kDone : St::kFailed;
      if (!s.ok() && first_error.ok()) {
        first_error = s;
        stop_.store(true);
      }
      cv.notify_all();
    }
  };
  const size_t n = std::max<size_t>(1, std::min<size_t>(config_.parallel, tasks.size()));
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; ++i) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();

  if (!first_error.ok()) return first_error;
  if (cancel_.load()) return cancelled();
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (state[i] != St::kDone) {
      return Status(Code::kInvalidArgument,
                    "cannot order " + tasks[i].source +
                        " after its parent and origin (a cycle of clones?); replicate it alone");
    }
  }
  return Status::Ok();
}

Result<TargetView> JobRunner::target_view(BusClient& bus, const DatasetTask& task,
                                          uint64_t origin_guid) {
  proto::TargetStateRequest req{job_.job, task.target, origin_guid};
  auto reply = bus.call(req, kTargetStateTimeout, &cancel_);
  if (!reply.ok()) return reply.status().with_context("asking " + job_.target_agent + " about " + task.target);
  auto state = reply->as<proto::TargetStateReply>();
  if (!state.ok()) return state.status();
  TargetView view;
  view.dataset = task.target;
  view.exists = state->exists;
  view.has_origin = state->origin_present;
  for (const auto& s : state->snapshots) view.snapshots.push_back({s.name, s.guid, s.createtxg});
  return view;
}

Status JobRunner::sync_dataset(BusClient& bus, const DatasetTask& task) {
  std::optional<OriginRef> origin;
  if (task.origin) {
    auto [ds, snap] = split_snapshot(*task.origin);
    auto guid = zfs_.guid(*task.origin);
    if (!guid.ok()) return guid.status().with_context("reading the origin of " + task.source);
    origin = OriginRef{std::string(ds), std::string(snap), *guid};
  }
  auto target = target_view(bus, task, origin ? origin->guid : 0);
  if (!target.ok()) return target.status();
  const PlanOptions options{job_.force};
  uint32_t done_here = 0;
  int failures = 0;
  bool plain = true;  // incrementals go plain until zfs recv refuses one (run_hop)
  // The listing that plans the next hop is taken while the current hop runs: it is a
  // zfs command (longer the more snapshots there are) that would otherwise sit between
  // two hops. It is as fresh as a listing taken just before a hop ever was (a snapshot
  // destroyed after it fails its send and is re-planned below). "Up to date" is only
  // decided on a listing taken after the last hop, so a snapshot made during it is sent.
  std::future<Result<std::vector<SnapshotVersion>>> early;
  while (true) {
    if (cancel_.load()) return cancelled();
    if (stop_.load()) return Status(Code::kCancelled, "stopped because another dataset failed");
    const bool from_early = early.valid();
    auto snaps = from_early ? early.get() : zfs_.list_snapshots(task.source);  // afresh every hop
    if (!snaps.ok()) return snaps.status();
    auto plan = plan_next_hop(SourceView{task.source, *snaps, origin}, *target, options);
    if (!plan.ok()) return plan.status();
    if (from_early && plan->kind == HopKind::kUpToDate) continue;  // list again to be sure
    for (const auto& w : plan->warnings) warn(bus, w);
    if (plan->kind == HopKind::kUpToDate) {
      if (done_here == 0) {
        update(bus, proto::JobUpdate{job_.job, "up_to_date", task.source, 0, 0, "", "", 0, 0, 0,
                                     task.target + " is up to date with " + task.source});
      }
      return Status::Ok();
    }
    const uint32_t n = ++hop_counter_;
    early = std::async(std::launch::async, [this, &task] { return zfs_.list_snapshots(task.source); });
    Status s = run_hop(bus, task, *plan, n, done_here + static_cast<uint32_t>(plan->remaining),
                       plain);
    if (!s.ok()) early = {};  // a failed hop re-plans from a listing taken after it
    if (s.ok()) {
      ++done_here;
      failures = 0;
      if (plan->force_receive) {
        target = target_view(bus, task, origin ? origin->guid : 0);  // -F rolled some back
        if (!target.ok()) return target.status();
      } else {
        uint64_t txg = 0;
        for (const auto& t : target->snapshots) txg = std::max(txg, t.createtxg);
        target->exists = true;
        target->snapshots.push_back({plan->to, plan->to_guid, txg + 1});
      }
      continue;
    }
    if (cancel_.load()) return cancelled();
    const std::string where = "hop " + std::to_string(n) + " of " + task.source + " (" +
                              hop_text(*plan) + ")";
    if (s.code() == Code::kZfsFailed && replan_after_send_failure(task, *plan, s).ok()) {
      warn(bus, where + ": " + s.message() + "; the snapshot was destroyed on the source, so "
                "the next hop is planned from a fresh listing");
      target = target_view(bus, task, origin ? origin->guid : 0);
      if (!target.ok()) return target.status();
      continue;
    }
    if (!retryable(s) || ++failures >= config_.hop_attempts) {
      if (failures >= config_.hop_attempts) {
        return s.with_context(where + " failed " + std::to_string(failures) + " times; last error");
      }
      return s.with_context(where);
    }
    const auto backoff = config_.retry_backoff * (1 << std::min(failures - 1, 6));
    warn(bus, where + " failed (" + s.message() + "); retrying in " +
                  std::to_string(backoff.count()) + " ms (attempt " + std::to_string(failures + 1) +
                  " of " + std::to_string(config_.hop_attempts) + ")");
    if (!sleep_unless_cancelled(backoff)) return cancelled();
    // The receiver may have the snapshot after all (its verdict was lost): ask again.
    auto fresh = target_view(bus, task, origin ? origin->guid : 0);
    if (fresh.ok()) target = std::move(fresh);
  }
}

Status JobRunner::run_hop(BusClient& bus, const DatasetTask& task, const HopPlan& plan,
                          uint32_t n, uint32_t of, bool& plain) {
  update(bus, proto::JobUpdate{job_.job, "hop_started", task.source, n, of,
                               plan.kind == HopKind::kFull ? "" : plan.from, plan.to, 0, 0, 0, ""});
  const auto started = std::chrono::steady_clock::now();
  proto::PrepareRequest prep_req;
  prep_req.job = job_.job;
  prep_req.hop = n;
  prep_req.dataset = task.target;
  prep_req.fence = job_.fence;
  prep_req.force = plan.force_receive;
  prep_req.to_guid = plan.to_guid;
  prep_req.snapshot = plan.to;
  // Every incremental names its base: the receiver discards changes made on the target
  // since then (a received child's mountpoint directory is one), or with force rolls
  // back to it. Without force it is first tried plain (no listing, no -F, see
  // PrepareRequest::plain); once zfs recv refused a plain hop, this dataset's hops are
  // checked for the rest of the job.
  if (plan.kind == HopKind::kIncremental) {
    prep_req.rollback_guid = plan.from_guid;
    prep_req.plain = plain && !plan.force_receive;
  }
  Status result;
  proto::RecvResultReply verdict;
  while (true) {
    verdict = {};
    result = prepare_and_stream(bus, task, plan, n, prep_req, verdict);
    const bool refused = !result.ok() && result.code() == Code::kZfsFailed && verdict.exit_code > 0;
    if (!prep_req.plain || !refused || cancel_.load() || stop_.load()) break;
    spdlog::info("job {}: hop {}: zfs recv refused the plain receive into {}:{} ({}); "
                 "repeating it after checking that @{} is still the target's latest snapshot",
                 job_.job, n, job_.target_agent, task.target, verdict.stderr_text, plan.from);
    plain = false;
    prep_req.plain = false;
  }
  proto::JobUpdate u{job_.job, result.ok() ? "hop_done" : "hop_failed", task.source, n, of,
                     plan.kind == HopKind::kFull ? "" : plan.from, plan.to, verdict.bytes, 0,
                     seconds_since(started), result.ok() ? "" : result.message()};
  if (u.seconds > 0) u.rate = static_cast<double>(verdict.bytes) / u.seconds;
  update(bus, std::move(u));
  return result;
}

Status JobRunner::prepare_and_stream(BusClient& bus, const DatasetTask& task, const HopPlan& plan,
                                     uint32_t n, const proto::PrepareRequest& prep_req,
                                     proto::RecvResultReply& verdict) {
  auto prep = bus.call(prep_req, config_.prepare_timeout, &cancel_);
  while (!prep.ok() && prep.status().code() == Code::kBusy) {
    // Waits without limit (the receiver is alive and working); one warning per job, not
    // a line per poll.
    warn(bus, "receiver " + job_.target_agent + " is busy (every receive slot its --max-recvs "
              "allows is in use); hops wait for a free slot");
    if (stop_.load() || !sleep_unless_cancelled(kBusyPoll)) break;
    prep = bus.call(prep_req, config_.prepare_timeout, &cancel_);
  }
  if (!prep.ok()) {
    return prep.status().with_context("preparing the receive into " + job_.target_agent + ":" +
                                      task.target);
  }
  auto reply = prep->as<proto::PrepareReply>();
  if (!reply.ok()) return reply.status();
  return stream_hop(bus, task, plan, n, *reply, verdict);
}

Status JobRunner::stream_hop(BusClient& bus, const DatasetTask& task, const HopPlan& plan,
                             uint32_t n, const proto::PrepareReply& prep,
                             proto::RecvResultReply& verdict) {
  if (config_.keys && prep.server_key.empty()) {
    settle_session(bus, prep.session, "the sender has no key to check the receiver by");
    return Status(Code::kRefused, "the broker named no key for receiver " + job_.target_agent +
                                      "; this agent sends only over CURVE");
  }
  auto send = zfs_.start_send(send_spec(task, plan));
  if (!send.ok()) {
    settle_session(bus, prep.session, "zfs send could not start");
    return send.status();
  }
  pipe::Options pipe_options = config_.pipe;
  if (config_.keys) {
    pipe_options.configure_socket = curve_client_setup(*config_.keys, prep.server_key);
  }
  auto pipe = pipe::PipeSender::connect(ctx_, prep.endpoint, prep.token, pipe_options);
  if (!pipe.ok()) {
    (*send)->kill(SIGKILL);
    (*send)->wait();
    settle_session(bus, prep.session, "the data pipe could not connect");
    return pipe.status();
  }
  auto last_progress = std::chrono::steady_clock::now();
  const auto started = last_progress;
  auto progress = [&](uint64_t bytes) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_progress < kProgressInterval) return;
    last_progress = now;
    proto::JobUpdate u{job_.job, "progress", task.source, n, 0, plan.from, plan.to, bytes, 0,
                       seconds_since(started), ""};
    u.rate = static_cast<double>(bytes) / std::max(u.seconds, 1e-6);
    update(bus, std::move(u));
  };
  // The verdict is asked for before the stream starts: a receive that ends early (zfs
  // recv refused the stream or gave up) stops the stream at once (VerdictWatch).
  VerdictWatch watch(ctx_, config_.bus_endpoint, job_.job, prep.session, cancel_);
  // A session that failed without a verdict from the watch is aborted and settled here.
  auto settle = [&](const std::string& why) -> Status {
    watch.abandon();
    auto settled = settle_session(bus, prep.session, why);
    if (settled) verdict = *settled;
    return settled ? zfs_recv_failure(task, *settled) : Status::Ok();
  };
  // The receive ended before the stream did: its verdict is the hop's outcome.
  auto ended_early = [&]() -> std::optional<Status> {
    auto early = watch.early_verdict();
    if (!early || cancel_.load()) return std::nullopt;
    verdict = *early;
    if (Status s = zfs_recv_failure(task, verdict); !s.ok()) return s;
    return Status(Code::kProtocol, "receiver " + job_.target_agent +
                                       " ended the receive before the stream did: " + verdict.reason);
  };
  auto streamed = (*pipe)->stream_from((*send)->stdout_fd(), watch.stop_stream(), progress);
  if (!streamed.ok()) {
    (*send)->kill(SIGKILL);
    (*send)->wait();
    if (auto early = ended_early()) return *early;
    const Status failed = cancel_.load() ? cancelled() : streamed.status();
    (*pipe)->send_abort(failed.message());
    // The pipe error may only be the echo of zfs recv giving up (out of space: the
    // receiver stopped reading); then zfs's words are the reason, and no retry helps.
    ZPS_RETURN_IF_ERROR(settle(failed.message()));
    return failed;
  }
  ExitStatus st = (*send)->wait();
  if (!st.ok()) {
    const std::string err = (*send)->stderr_text();
    (*pipe)->send_abort("zfs send failed");
    settle("zfs send failed");
    return Status(Code::kZfsFailed, format_argv((*send)->argv()) + " failed (" + st.describe() +
                                        "): " + (err.empty() ? "no message" : err));
  }
  if (Status s = (*pipe)->finish(&watch.stop_stream()); !s.ok()) {
    if (auto early = ended_early()) return *early;
    ZPS_RETURN_IF_ERROR(settle(s.message()));
    return s;
  }
  auto r = watch.wait();
  if (!r.ok() && r.status().code() != Code::kCancelled) {
    // No verdict while the stream ran (the broker was away or restarted): ask again.
    auto reply = bus.call(proto::RecvResultRequest{job_.job, prep.session},
                          VerdictWatch::kTimeout, &cancel_);
    r = reply.ok() ? reply->as<proto::RecvResultReply>() : Result<proto::RecvResultReply>(reply.status());
  }
  if (!r.ok()) {
    if (r.status().code() == Code::kCancelled) {
      settle_session(bus, prep.session, cancelled().message());
      return cancelled();
    }
    sessions_unsettled_.store(true);
    return r.status().with_context("waiting for " + job_.target_agent + " to receive");
  }
  verdict = *r;
  if (verdict.ok) return Status::Ok();
  ZPS_RETURN_IF_ERROR(zfs_recv_failure(task, verdict));
  return Status(Code::kProtocol, "receiver " + job_.target_agent + " aborted the receive: " +
                                     verdict.reason);
}

Status JobRunner::zfs_recv_failure(const DatasetTask& task,
                                   const proto::RecvResultReply& verdict) const {
  if (verdict.ok || verdict.exit_code <= 0 || verdict.stderr_text.empty()) return Status::Ok();
  return Status(Code::kZfsFailed, "zfs recv into " + job_.target_agent + ":" + task.target +
                                      " failed: " + verdict.stderr_text);
}

// Makes sure the receiver's session is over before the hop is retried or the job ends:
// abort it (the pipe's abort frame may not have arrived) and wait for its verdict.
std::optional<proto::RecvResultReply> JobRunner::settle_session(BusClient& bus, uint64_t session,
                                                                const std::string& reason) {
  auto aborted = bus.call(proto::AbortRequest{job_.job, session, reason}, kSettleTimeout);
  auto verdict = bus.call(proto::RecvResultRequest{job_.job, session}, kSettleTimeout);
  if (!aborted.ok() || !verdict.ok()) sessions_unsettled_.store(true);
  if (!verdict.ok()) return std::nullopt;
  auto r = verdict->as<proto::RecvResultReply>();
  if (!r.ok()) return std::nullopt;
  return *r;
}

Status JobRunner::replan_after_send_failure(const DatasetTask& task, const HopPlan& plan,
                                            const Status& failure) {
  auto snaps = zfs_.list_snapshots(task.source);
  if (!snaps.ok()) return failure;
  bool to_there = false, from_there = plan.kind != HopKind::kIncremental;
  for (const auto& s : *snaps) {
    to_there = to_there || s.guid == plan.to_guid;
    from_there = from_there || s.name == plan.from;
  }
  if (to_there && from_there) return failure;  // both still exist: a real failure
  return Status::Ok();
}

void JobRunner::update(BusClient& bus, proto::JobUpdate u) {
  u.job = job_.job;
  bus.send(proto::encode_notice(u));
}

void JobRunner::warn(BusClient& bus, const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!warned_.insert(message).second) return;
  }
  spdlog::warn("job {}: {}", job_.job, message);
  proto::JobUpdate u;
  u.kind = "warning";
  u.message = message;
  update(bus, std::move(u));
}

// Reports the end until the broker acknowledges it: a broker restart must not lose it.
void JobRunner::end_job(BusClient& bus, const Status& outcome) {
  proto::JobEnd end;
  end.job = job_.job;
  end.state = outcome.ok()                          ? "succeeded"
              : outcome.code() == Code::kCancelled ? "cancelled"
                                                   : "failed";
  end.error = outcome.ok() ? "" : outcome.message();
  end.error_code = outcome.ok() ? "" : std::string(code_name(outcome.code()));
  end.receives_settled = !sessions_unsettled_.load();
  if (outcome.ok()) {
    spdlog::info("job {}: done, {} hop(s)", job_.job, hop_counter_.load());
  } else {
    spdlog::warn("job {} {}: {}", job_.job, end.state, end.error);
  }
  const bool stopping = outcome.code() == Code::kUnavailable && cancel_.load();
  const int attempts = stopping ? 1 : 720;  // an hour of tries, unless the agent stops
  for (int attempt = 0; attempt < attempts; ++attempt) {
    auto r = bus.call(end, stopping ? std::chrono::seconds(2) : std::chrono::seconds(5));
    if (r.ok() || r.status().code() == Code::kNotFound) return;
  }
}

void JobRunner::cancel(Code code, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancel_status_.ok()) cancel_status_ = Status(code, reason);
  }
  cancel_.store(true);
}

Status JobRunner::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancel_status_.ok() ? Status(Code::kCancelled, "cancelled") : cancel_status_;
}

bool JobRunner::sleep_unless_cancelled(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (cancel_.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return !cancel_.load();
}

}  // namespace zps::agent
