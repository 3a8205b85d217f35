// The broker's job handling: accepting a replication (placement, lock, job record),
// following it (updates from the sender, requests it forwards to the receiver), and
// ending it (locks released once no receive can still be writing).
#include <spdlog/spdlog.h>

#include "broker/broker.h"
#include "broker/placement.h"
#include "shared/ids.h"
#include "shared/names.h"

namespace zps::broker {
namespace {

constexpr auto kJobStartTimeout = std::chrono::seconds(30);
constexpr auto kForwardTimeout = std::chrono::seconds(120);
// recv_result is a long poll that ends when zfs recv ends; the receiver's liveness,
// not this deadline, is what normally ends a wait for a dead receiver.
constexpr auto kRecvResultTimeout = std::chrono::hours(24);
constexpr size_t kFinishedJobsKept = 1000;

uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

// The fields every job-scoped request carries.
struct JobScoped {
  uint64_t job = 0;
  std::string dataset;
  template <class V>
  void fields(V& v) {
    v("job", job);
    v("dataset", dataset);
  }
};

Status validate_replicate(const proto::ReplicateRequest& r) {
  ZPS_RETURN_IF_ERROR(validate_agent_id(r.source_agent).with_context("source"));
  ZPS_RETURN_IF_ERROR(validate_dataset_name(r.source_dataset).with_context("source"));
  if (!r.target_agent.empty()) {
    ZPS_RETURN_IF_ERROR(validate_agent_id(r.target_agent).with_context("target"));
  }
  if (!r.target_dataset.empty()) {
    if (r.target_agent.empty()) {
      return Status(Code::kInvalidArgument, "a target dataset needs its agent: AGENT:DATASET");
    }
    ZPS_RETURN_IF_ERROR(validate_dataset_name(r.target_dataset).with_context("target"));
  }
  return Status::Ok();
}

}  // namespace

Job* Broker::find_job(uint64_t id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

void Broker::persist(const Job& job) {
  if (Status s = store_->save_job(job); !s.ok()) spdlog::error("job {}: {}", job.id, s.message());
}

void Broker::on_replicate(const Inbound& in, const proto::Envelope& e) {
  auto req = e.as<proto::ReplicateRequest>();
  if (!req.ok()) return reply_error(in, e.id, req.status());
  if (Status s = validate_replicate(*req); !s.ok()) return reply_error(in, e.id, s);

  const AgentEntry* source = registry_.find(req->source_agent);
  if (source == nullptr) {
    return reply_error(in, e.id, Status(Code::kNotFound, "source agent " + req->source_agent +
                                                             " is not registered (see zpsctl agents)"));
  }
  if (!source->alive) {
    return reply_error(in, e.id, Status(Code::kUnavailable, "source agent " + req->source_agent +
                                                                " is not alive; check its zps-agent"));
  }
  auto remembered = store_->find_placement(req->source_agent, req->source_dataset);
  if (!remembered.ok()) return reply_error(in, e.id, remembered.status());
  auto choice = choose_target(registry_, req->source_agent, req->source_dataset, req->target_agent,
                              req->target_dataset, *remembered);
  if (!choice.ok()) return reply_error(in, e.id, choice.status());
  const AgentEntry* target = registry_.find_alive(choice->agent);
  if (target == nullptr) {
    return reply_error(in, e.id, Status(Code::kUnavailable, "target agent " + choice->agent +
                                                                " is not connected (see zpsctl agents)"));
  }
  if (Status s = check_under_root(*target, choice->dataset); !s.ok()) return reply_error(in, e.id, s);
  if (choice->agent == req->source_agent &&
      (is_same_or_below(choice->dataset, req->source_dataset) ||
       is_same_or_below(req->source_dataset, choice->dataset))) {
    return reply_error(in, e.id, Status(Code::kInvalidArgument,
                                        "target " + choice->dataset + " overlaps source " +
                                            req->source_dataset + " on the same agent"));
  }

  const uint64_t id = next_job_id_++;
  if (Status s = store_->set_counter("next_job", next_job_id_); !s.ok()) {
    return reply_error(in, e.id, s);
  }
  auto lock = locks_.acquire(choice->agent, choice->dataset, req->recursive, id);
  if (!lock.ok()) return reply_error(in, e.id, lock.status());
  Status saved = store_->save_lock(*lock);
  if (saved.ok()) saved = store_->set_counter("next_fence", locks_.next_fence());
  if (!saved.ok()) {
    locks_.release_job(id);
    return reply_error(in, e.id, saved);
  }
  if (choice->chosen_by_broker) {
    Status s = store_->save_placement(
        Placement{req->source_agent, req->source_dataset, choice->agent, choice->dataset});
    if (!s.ok()) spdlog::error("{}", s.message());
  }

  Job job;
  job.id = id;
  job.source_agent = req->source_agent;
  job.source_dataset = req->source_dataset;
  job.target_agent = choice->agent;
  job.target_dataset = choice->dataset;
  job.recursive = req->recursive;
  job.force = req->force;
  job.fence = lock->fence;
  job.created_ms = unix_ms();
  persist(job);
  jobs_[id] = job;

  proto::JobStart start{id,           job.source_dataset, job.target_agent, job.target_dataset,
                        job.recursive, job.force,          job.fence};
  const uint64_t rid = next_request_id();
  PendingCall call;
  call.kind = PendingCall::Kind::kJobStart;
  call.origin_peer = in.peer;
  call.origin_id = e.id;
  call.to_agent = job.source_agent;
  call.job = id;
  call.deadline = Clock::now() + kJobStartTimeout;
  call.what = "the start of job " + std::to_string(id);
  pending_.add(rid, std::move(call));
  send_control(*router_, source->peer, proto::encode_request(start, rid));
  spdlog::info("job {}: replicate {}:{} -> {}:{}{}{} (fence {})", id, job.source_agent,
               job.source_dataset, job.target_agent, job.target_dataset,
               job.recursive ? " recursively" : "", job.force ? " with --force" : "", job.fence);
}

void Broker::on_job_start_reply(const PendingCall& call, const proto::Envelope& e) {
  Job* job = find_job(call.job);
  if (job == nullptr) return;
  if (!e.ok) {
    const Status why = e.error_status();
    finish_job(*job, JobState::kFailed, why.message(), e.err.code, true);
    send_control(*router_, call.origin_peer, proto::encode_error(call.origin_id, why));
    return;
  }
  if (job->state == JobState::kQueued) {
    job->state = JobState::kRunning;
    persist(*job);
  }
  send_control(*router_, call.origin_peer,
               proto::encode_reply(call.origin_id, proto::JobReply{job->info(true)}));
}

void Broker::on_jobs(const Inbound& in, const proto::Envelope& e) {
  auto req = e.as<proto::JobsRequest>();
  if (!req.ok()) return reply_error(in, e.id, req.status());
  proto::JobsReply r;
  for (const auto& [id, job] : jobs_) {
    if (req->all || !is_final(job.state)) r.jobs.push_back(job.info(false));
  }
  reply(in, e.id, proto::encode_reply(e.id, r));
}

void Broker::on_job(const Inbound& in, const proto::Envelope& e) {
  auto req = e.as<proto::JobRequest>();
  if (!req.ok()) return reply_error(in, e.id, req.status());
  if (const Job* job = find_job(req->job)) {
    return reply(in, e.id, proto::encode_reply(e.id, proto::JobReply{job->info(true)}));
  }
  auto stored = store_->load_job(req->job);
  if (!stored.ok()) return reply_error(in, e.id, stored.status());
  if (!*stored) {
    return reply_error(in, e.id, Status(Code::kNotFound, "there is no job " + std::to_string(req->job) +
                                                             " (see zpsctl jobs --all)"));
  }
  reply(in, e.id, proto::encode_reply(e.id, proto::JobReply{(*stored)->info(true)}));
}

void Broker::on_watch(const Inbound& in, const proto::Envelope& e) {
  auto req = e.as<proto::WatchRequest>();
  if (!req.ok()) return reply_error(in, e.id, req.status());
  const Job* job = find_job(req->job);
  if (job == nullptr) return on_job(in, e);  // finished long ago, or unknown: answer like `job`
  if (!is_final(job->state)) watchers_[job->id].insert({in.peer, e.id});
  reply(in, e.id, proto::encode_reply(e.id, proto::JobReply{job->info(true)}));
}

void Broker::on_cancel(const Inbound& in, const proto::Envelope& e) {
  auto req = e.as<proto::CancelRequest>();
  if (!req.ok()) return reply_error(in, e.id, req.status());
  Job* job = find_job(req->job);
  if (job == nullptr) {
    return reply_error(in, e.id, Status(Code::kNotFound, "there is no running job " +
                                                             std::to_string(req->job) + " (see zpsctl jobs)"));
  }
  if (is_final(job->state)) {
    return reply_error(in, e.id, Status(Code::kRefused, "job " + std::to_string(job->id) + " already " +
                                                            std::string(state_name(job->state))));
  }
  const AgentEntry* sender = registry_.find_alive(job->source_agent);
  if (sender == nullptr) {
    finish_job(*job, JobState::kCancelled, "cancelled by the operator (its sender " +
                                               job->source_agent + " was not connected)",
               "cancelled", false);
  } else {
    const uint64_t rid = next_request_id();
    PendingCall call;
    call.kind = PendingCall::Kind::kJobCancel;
    call.to_agent = job->source_agent;
    call.job = job->id;
    call.deadline = Clock::now() + kJobStartTimeout;
    call.what = "cancelling job " + std::to_string(job->id);
    pending_.add(rid, std::move(call));
    send_control(*router_, sender->peer, proto::encode_request(proto::JobCancel{job->id}, rid));
    spdlog::info("job {}: cancel requested; asked {} to stop it", job->id, job->source_agent);
  }
  reply(in, e.id, proto::encode_reply(e.id, proto::JobReply{job->info(false)}));
}

// ---- From the sender ----------------------------------------------------------------

void Broker::on_job_update(const std::string& agent, const proto::Envelope& e) {
  auto u = e.as<proto::JobUpdate>();
  if (!u.ok()) return;
  Job* job = find_job(u->job);
  if (job == nullptr || job->source_agent != agent || is_final(job->state)) return;
  if (u->kind == "warning") {
    job->warnings.push_back(u->message);
    persist(*job);
    spdlog::warn("job {}: {}", job->id, u->message);
  } else if (u->hop > 0 && u->hop <= 1000000) {
    if (job->hops.size() < u->hop) job->hops.resize(u->hop);
    proto::HopInfo& hop = job->hops[u->hop - 1];
    hop.n = u->hop;
    hop.dataset = u->dataset;
    hop.from = u->from;
    hop.to = u->to;
    hop.bytes = u->bytes;
    hop.seconds = u->seconds;
    if (u->kind == "hop_started") {
      hop.state = "running";
    } else if (u->kind == "hop_done") {
      hop.state = "succeeded";
      job->bytes += u->bytes;
      ++job->hops_done;
      spdlog::info("job {}: hop {} {} {}{}@{} received ({} in {:.2f} s)", job->id, u->hop,
                   u->dataset, u->from.empty() ? "full " : "-i ",
                   u->from.empty() ? "" : (u->from.find('@') == std::string::npos ? "@" + u->from + " " : u->from + " "),
                   u->to, human_bytes(u->bytes), u->seconds);
    } else if (u->kind == "hop_failed") {
      hop.state = "failed";
      hop.error = u->message;
      spdlog::warn("job {}: hop {} {} @{} failed: {}", job->id, u->hop, u->dataset, u->to, u->message);
    }
    if (u->kind != "progress") {
      if (Status s = store_->save_hop(job->id, hop); !s.ok()) spdlog::error("{}", s.message());
      if (u->kind == "hop_done") persist(*job);
    }
  }
  proto::JobEvent ev;
  ev.kind = u->kind;
  ev.dataset = u->dataset;
  ev.hop = u->hop;
  ev.of = u->of;
  ev.from = u->from;
  ev.to = u->to;
  ev.bytes = u->bytes;
  ev.rate = u->rate;
  ev.message = u->message;
  notify_watchers(*job, std::move(ev));
}

void Broker::on_job_end(const std::string& agent, const Inbound& in, const proto::Envelope& e) {
  auto end = e.as<proto::JobEnd>();
  if (!end.ok()) return reply_error(in, e.id, end.status());
  Job* job = find_job(end->job);
  if (job == nullptr || job->source_agent != agent) {
    return reply_error(in, e.id, Status(Code::kNotFound, "job " + std::to_string(end->job) +
                                                             " is not a job of agent " + agent));
  }
  if (!is_final(job->state)) {
    JobState state = state_from_name(end->state);
    if (!is_final(state)) state = JobState::kFailed;
    finish_job(*job, state, end->error, end->error_code, end->receives_settled);
  }
  reply(in, e.id, proto::encode_reply(e.id, proto::Empty{}));
}

void Broker::forward_in_job(const std::string& agent, const Inbound& in, const proto::Envelope& e) {
  auto scoped = e.as<JobScoped>();
  if (!scoped.ok()) return reply_error(in, e.id, scoped.status());
  Job* job = find_job(scoped->job);
  if (job == nullptr || job->source_agent != agent || is_final(job->state)) {
    return reply_error(in, e.id, Status(Code::kRefused, "job " + std::to_string(scoped->job) +
                                                            " is not running on agent " + agent));
  }
  const bool names_dataset = e.type == proto::TargetStateRequest::kType ||
                             e.type == proto::PrepareRequest::kType;
  if (names_dataset) {
    if (Status s = validate_dataset_name(scoped->dataset); !s.ok()) return reply_error(in, e.id, s);
    if (!locks_.covers(job->id, job->target_agent, scoped->dataset)) {
      return reply_error(in, e.id, Status(Code::kRefused, "job " + std::to_string(job->id) +
                                                              " holds no lock on " + job->target_agent +
                                                              ":" + scoped->dataset));
    }
  }
  const AgentEntry* receiver = registry_.find_alive(job->target_agent);
  if (receiver == nullptr) {
    const AgentEntry* known = registry_.find(job->target_agent);
    const std::string why = known != nullptr && !known->gone.empty() ? ": " + known->gone : "";
    return reply_error(in, e.id, Status(Code::kUnavailable, "receiver agent " + job->target_agent +
                                                                " is not connected" + why));
  }
  const uint64_t rid = next_request_id();
  PendingCall call;
  call.origin_peer = in.peer;
  call.origin_id = e.id;
  call.to_agent = job->target_agent;
  call.job = job->id;
  call.deadline = Clock::now() +
                  (e.type == proto::RecvResultRequest::kType
                       ? std::chrono::duration_cast<Clock::duration>(kRecvResultTimeout)
                       : std::chrono::duration_cast<Clock::duration>(kForwardTimeout));
  call.what = e.type + " of job " + std::to_string(job->id);
  const std::string server_key =
      e.type == proto::PrepareRequest::kType ? agent_key(job->target_agent) : std::string();
  call.server_key = server_key;
  pending_.add(rid, std::move(call));
  std::string body;
  if (e.type == proto::PrepareRequest::kType) {
    // Re-encoded from the checked struct, with the sender stamped by the broker: the
    // receiver trusts `sender` because only the broker sets it.
    auto prep = e.as<proto::PrepareRequest>();
    if (!prep.ok()) {
      pending_.take(rid);
      return reply_error(in, e.id, prep.status());
    }
    prep->sender = agent;
    if (curve()) {
      // Keys from the authorized-keys file, never from the agents' own claims: the
      // receiver's data socket lets in only the sender's key, and the sender talks only
      // to the receiver's.
      prep->sender_key = agent_key(agent);
      if (prep->sender_key.empty() || server_key.empty()) {
        pending_.take(rid);
        return reply_error(in, e.id, Status(Code::kRefused,
                                            "the authorized keys list no key for agent " +
                                                agent + " or " + job->target_agent));
      }
    }
    body = proto::encode_request(*prep, rid);
  } else {
    body = proto::with_id(e, rid);
  }
  send_control(*router_, receiver->peer, body);
}

// ---- Ending jobs and releasing locks ------------------------------------------------

void Broker::finish_job(Job& job, JobState state, const std::string& error,
                        const std::string& code, bool receives_settled) {
  job.state = state;
  job.error = error;
  job.error_code = state == JobState::kSucceeded ? "" : code;
  job.ended_ms = unix_ms();
  persist(job);
  if (state == JobState::kSucceeded) {
    spdlog::info("job {} succeeded: {} hop(s), {} in {:.1f} s", job.id, job.hops_done,
                 human_bytes(job.bytes), (job.ended_ms - job.created_ms) / 1000.0);
  } else {
    spdlog::warn("job {} {}: {}", job.id, state_name(state), error);
  }
  proto::JobEvent ev;
  ev.kind = "ended";
  ev.message = error;
  notify_watchers(job, std::move(ev));
  watchers_.erase(job.id);
  if (receives_settled) {
    for (const auto& l : locks_.release_job(job.id)) {
      spdlog::info("job {}: released lock on {}:{}", job.id, l.agent, l.dataset);
    }
    if (Status s = store_->delete_locks(job.id); !s.ok()) spdlog::error("{}", s.message());
  } else {
    settling_[job.id] = Clock::now();
  }
  // Keep memory bounded: forget the oldest finished jobs (they stay in the store).
  size_t finished = 0;
  for (const auto& [id, j] : jobs_) finished += is_final(j.state) ? 1 : 0;
  for (auto it = jobs_.begin(); finished > kFinishedJobsKept && it != jobs_.end();) {
    if (is_final(it->second.state) && !settling_.count(it->first)) {
      it = jobs_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
}

void Broker::release_locks_when_settled(Time now) {
  const auto lease = std::chrono::seconds(options_.lock_lease_s);
  for (auto it = settling_.begin(); it != settling_.end();) {
    const uint64_t id = it->first;
    const Job* job = find_job(id);
    bool release = job == nullptr || now - it->second > lease;
    std::string why = "the lease ran out";
    if (!release) {
      const AgentEntry* receiver = registry_.find_alive(job->target_agent);
      if (receiver != nullptr && receiver->last_seen > it->second) {
        release = true;
        for (const auto& r : receiver->load.recvs) release = release && r.job != id;
        why = "receiver " + job->target_agent + " reports no active receive for it";
      }
    }
    if (release) {
      for (const auto& l : locks_.release_job(id)) {
        spdlog::info("job {}: released lock on {}:{} ({})", id, l.agent, l.dataset, why);
      }
      if (Status s = store_->delete_locks(id); !s.ok()) spdlog::error("{}", s.message());
      it = settling_.erase(it);
    } else {
      ++it;
    }
  }
}

void Broker::reconcile_jobs_of(const std::string& agent) {
  const AgentEntry* e = registry_.find(agent);
  if (e == nullptr) return;
  for (auto& [id, job] : jobs_) {
    if (job.source_agent != agent || job.state != JobState::kRunning) continue;
    bool runs = false;
    for (uint64_t j : e->load.jobs) runs = runs || j == id;
    if (!runs) {
      finish_job(job, JobState::kFailed,
                 "sender agent " + agent + " no longer runs this job (it restarted or lost "
                 "its broker connection); run the replication again",
                 "unavailable", false);
    }
  }
}

void Broker::fail_orphaned_jobs(Time now) {
  if (now - started_ < registry_.dead_after()) return;  // give agents time to come back
  for (auto& [id, job] : jobs_) {
    if (is_final(job.state) || registry_.find_alive(job.source_agent) != nullptr) continue;
    finish_job(job, JobState::kFailed,
               "sender agent " + job.source_agent + " was lost (no heartbeat for " +
                   std::to_string(registry_.dead_after().count()) + " ms); run the replication "
                   "again once it is back",
               "unavailable", false);
  }
}

void Broker::notify_watchers(const Job& job, proto::JobEvent event) {
  auto it = watchers_.find(job.id);
  if (it == watchers_.end()) return;
  event.job = job.id;
  event.state = job.info(false);
  const std::string body = proto::encode_notice(event);
  for (auto w = it->second.begin(); w != it->second.end();) {
    if (send_control(*router_, w->first, body)) {
      ++w;
    } else {
      w = it->second.erase(w);  // the watcher went away
    }
  }
}

}  // namespace zps::broker
