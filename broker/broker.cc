#include "broker/broker.h"

#include <spdlog/spdlog.h>

#include <fstream>

#include "shared/curve.h"
#include "shared/ids.h"
#include "shared/names.h"
#include "shared/version.h"

namespace zps::broker {
namespace {

constexpr int kLiveness = 3;  // missed heartbeat intervals before a peer counts as dead
constexpr auto kForwardTimeout = std::chrono::seconds(60);
constexpr size_t kMaxBatch = 1000;  // messages handled between timer checks

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Broker::Broker(Options options, zmq::context_t& ctx)
    : options_(std::move(options)),
      ctx_(ctx),
      registry_(std::chrono::milliseconds(options_.heartbeat_ms), kLiveness) {}

Broker::~Broker() = default;

Status Broker::start() {
  // Before anything is bound or opened: a broker that would run in plaintext on the
  // network stops here.
  ZPS_RETURN_IF_ERROR(setup_security());
  auto store = Store::open(options_.state_dir);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);

  auto next_job = store_->get_counter("next_job", 1);
  auto next_fence = store_->get_counter("next_fence", 1);
  auto locks = store_->load_locks();
  auto agents = store_->load_agents();
  auto jobs = store_->load_jobs(1000);
  for (const Status& s : {next_job.status(), next_fence.status(), locks.status(), agents.status(),
                          jobs.status()}) {
    if (!s.ok()) return s;
  }
  next_job_id_ = *next_job;
  locks_.restore(*locks, *next_fence);
  for (const auto& a : *agents) {
    proto::Hello h;
    h.agent = a.id;
    h.host = a.host;
    h.version = a.version;
    h.data_address = a.data_address;
    h.recv_roots = a.recv_roots;
    h.max_recvs = a.max_recvs;
    registry_.restore(h);
  }
  for (auto& j : *jobs) jobs_[j.id] = std::move(j);
  // A lock whose job had already ended was waiting for its receiver to settle when the
  // broker stopped: settle it again (receiver reports no receive for it, or the lease),
  // or nothing would ever release it.
  for (const auto& l : *locks) {
    auto it = jobs_.find(l.job);
    if (it == jobs_.end() || is_final(it->second.state)) settling_.emplace(l.job, Clock::now());
  }

  try {
    router_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::router);
    configure_control_socket(*router_);
    router_->set(zmq::sockopt::router_mandatory, 1);
    if (keys_) {
      if (Status s = make_curve_server(*router_, *keys_, kControlZapDomain); !s.ok()) return s;
    }
    router_->bind(options_.listen);
    endpoint_ = router_->get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return Status(Code::kUnavailable, "cannot listen on " + options_.listen + ": " + e.what() +
                                          " (is another zps-broker running? use --listen)");
  }
  std::ofstream(options_.state_dir + "/endpoint") << endpoint_ << "\n";
  size_t running = 0;
  for (const auto& [id, j] : jobs_) running += is_final(j.state) ? 0 : 1;
  spdlog::info("listening on {} (state in {}: {} agents known, {} unfinished jobs, {} locks)",
               endpoint_, store_->path(), registry_.agents().size(), running,
               locks_.list().size());
  started_ = Clock::now();
  return Status::Ok();
}

void Broker::run(const std::atomic<bool>& stop) {
  const auto hb = std::chrono::milliseconds(options_.heartbeat_ms);
  const auto tick = std::min<std::chrono::milliseconds>(hb / 4, std::chrono::milliseconds(100));
  while (!stop.load()) {
    zmq::pollitem_t item{router_->handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, tick);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("poll failed: {}", e.what());
      continue;
    }
    for (size_t i = 0; i < kMaxBatch; ++i) {
      auto in = recv_control(*router_, true);
      if (!in) break;
      on_message(*in, Clock::now());
    }
    const Time now = Clock::now();
    if (now - last_heartbeat_ >= hb) {
      last_heartbeat_ = now;
      send_heartbeats(now);
      for (const auto& id : registry_.sweep(now)) on_agent_dead(id);
      for (auto& [id, call] : pending_.take_expired(now)) {
        fail_pending(id, call, Status(Code::kTimeout, "no answer from agent " + call.to_agent +
                                                          " to " + call.what + " in time"));
      }
      fail_orphaned_jobs(now);
      release_locks_when_settled(now);
      // A burst of junk is logged by its first message; without this line the log would
      // go on saying "dropped 1" after the burst ended.
      if (malformed_ != malformed_reported_ && now - last_malformed_log_ > std::chrono::seconds(5)) {
        last_malformed_log_ = now;
        malformed_reported_ = malformed_;
        spdlog::warn("dropped {} malformed message(s) so far", malformed_);
      }
    }
  }
  spdlog::info("shutting down: state is in {}", store_->path());
}

void Broker::on_message(const Inbound& in, Time now) {
  if (!in.message.ok()) {
    ++malformed_;
    if (now - last_malformed_log_ > std::chrono::seconds(5)) {
      last_malformed_log_ = now;
      malformed_reported_ = malformed_;
      spdlog::warn("dropped {} malformed message(s) so far; the last from peer {} ({}): {}",
                   malformed_, peer_label(in.peer), in.peer_address, in.message.status().message());
    }
    return;
  }
  const proto::Envelope& e = *in.message;
  auto agent = registry_.id_of_peer(in.peer);
  if (!authorize(in, e, agent)) return;
  agent = registry_.touch(in.peer, now);
  if (e.is_reply()) return on_reply(in, e);
  if (e.type == proto::Hello::kType) return on_hello(in, e, now);
  if (e.type == proto::Heartbeat::kType) {
    if (!agent) {
      send_control(*router_, in.peer, proto::encode_notice(proto::Reregister{}));
      return;
    }
    return on_heartbeat(*agent, e);
  }
  if (e.type == proto::JobUpdate::kType || e.type == proto::JobEnd::kType ||
      e.type == proto::TargetStateRequest::kType || e.type == proto::PrepareRequest::kType ||
      e.type == proto::RecvResultRequest::kType || e.type == proto::AbortRequest::kType) {
    if (!agent) {
      send_control(*router_, in.peer, proto::encode_notice(proto::Reregister{}));
      if (e.id != 0) {
        reply_error(in, e.id, Status(Code::kRefused, "agent is not registered; send hello first"));
      }
      return;
    }
    return handle_agent_request(*agent, in, e);
  }
  handle_client_request(in, e);
}

void Broker::handle_agent_request(const std::string& agent, const Inbound& in,
                                  const proto::Envelope& e) {
  if (e.type == proto::JobUpdate::kType) return on_job_update(agent, e);
  if (e.type == proto::JobEnd::kType) return on_job_end(agent, in, e);
  forward_in_job(agent, in, e);
}

void Broker::handle_client_request(const Inbound& in, const proto::Envelope& e) {
  const Time now = Clock::now();
  if (e.id == 0) return;  // a notice of a type clients do not send: ignore
  if (e.type == proto::AgentsRequest::kType) return on_agents(in, e, now);
  if (e.type == proto::SnapshotsRequest::kType) return on_snapshots(in, e);
  if (e.type == proto::ReplicateRequest::kType) return on_replicate(in, e);
  if (e.type == proto::JobsRequest::kType) return on_jobs(in, e);
  if (e.type == proto::JobRequest::kType) return on_job(in, e);
  if (e.type == proto::WatchRequest::kType) return on_watch(in, e);
  if (e.type == proto::CancelRequest::kType) return on_cancel(in, e);
  if (e.type == proto::LocksRequest::kType) return on_locks(in, e);
  reply_error(in, e.id,
              Status(Code::kProtocol, "unknown message type '" + e.type +
                                          "' (this broker speaks zpsend " + kVersion + ")"));
}

void Broker::on_reply(const Inbound& in, const proto::Envelope& e) {
  auto call = pending_.take(e.re);
  if (!call) return;  // late, or not ours
  auto from = registry_.id_of_peer(in.peer);
  if (!from || *from != call->to_agent) {
    pending_.add(e.re, std::move(*call));  // a reply from the wrong peer does not count
    return;
  }
  switch (call->kind) {
    case PendingCall::Kind::kForward:
      if (!call->server_key.empty() && e.ok) {
        // A prepare's reply under CURVE: the sender connects to the receiver's key
        // from the authorized keys, whatever the receiver claimed.
        auto prep = e.as<proto::PrepareReply>();
        if (!prep.ok()) {
          send_control(*router_, call->origin_peer, proto::encode_error(call->origin_id, prep.status()));
          return;
        }
        prep->server_key = call->server_key;
        send_control(*router_, call->origin_peer, proto::encode_reply(call->origin_id, *prep));
        return;
      }
      send_control(*router_, call->origin_peer, proto::with_id(e, call->origin_id));
      return;
    case PendingCall::Kind::kJobStart:
      return on_job_start_reply(*call, e);
    case PendingCall::Kind::kJobCancel:
      if (!e.ok) spdlog::warn("job {}: cancel not taken by {}: {}", call->job, call->to_agent, e.err.msg);
      return;
  }
}

// ---- Agents -------------------------------------------------------------------------

void Broker::on_hello(const Inbound& in, const proto::Envelope& e, Time now) {
  auto hello = e.as<proto::Hello>();
  if (!hello.ok()) return reply_error(in, e.id, hello.status());
  Status valid = validate_agent_id(hello->agent);
  for (const auto& root : hello->recv_roots) {
    if (valid.ok()) valid = validate_dataset_name(root).with_context("receive root");
  }
  if (!valid.ok()) {
    ++refused_hellos_;
    if (now - last_refused_hello_log_ > std::chrono::seconds(5)) {
      last_refused_hello_log_ = now;
      spdlog::warn("refused hello from {}: {} ({} refused so far)", in.peer_address,
                   valid.message(), refused_hellos_);
    }
    return reply_error(in, e.id, valid);
  }
  if (Status in_use = registry_.admit(*hello, in.peer, now); !in_use.ok()) {
    ++refused_hellos_;
    if (now - last_refused_hello_log_ > std::chrono::seconds(5)) {
      last_refused_hello_log_ = now;
      spdlog::warn("refused hello from {}: {} ({} refused so far)", in.peer_address,
                   in_use.message(), refused_hellos_);
    }
    return reply_error(in, e.id, in_use);
  }
  const bool back = registry_.on_hello(*hello, in.peer, in.peer_address, now);
  AgentRecord rec{hello->agent,     hello->host,      hello->version, hello->data_address,
                  hello->recv_roots, hello->max_recvs, 0};
  rec.last_seen_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count());
  if (Status s = store_->save_agent(rec); !s.ok()) spdlog::error("{}", s.message());
  proto::HelloReply r{kVersion, static_cast<uint32_t>(options_.heartbeat_ms), kLiveness};
  reply(in, e.id, proto::encode_reply(e.id, r));
  if (back) {
    spdlog::info("agent {} registered from {} with roots [{}] (version {}, max {} receives)",
                 hello->agent, in.peer_address.empty() ? hello->host : in.peer_address,
                 join(hello->recv_roots), hello->version, hello->max_recvs);
  }
  reconcile_jobs_of(hello->agent);
}

void Broker::on_heartbeat(const std::string& agent, const proto::Envelope& e) {
  auto hb = e.as<proto::Heartbeat>();
  if (!hb.ok()) return;
  registry_.on_heartbeat(agent, *hb);
  if (!hb->stopping.empty()) on_agent_stopping(agent, hb->stopping);
}

void Broker::send_heartbeats(Time) {
  const std::string body = proto::encode_notice(proto::Heartbeat{});
  for (const auto& [id, e] : registry_.agents()) {
    if (e.alive) send_control(*router_, e.peer, body);
  }
}

void Broker::on_agent_dead(const std::string& agent) {
  spdlog::warn("agent {} is not alive: no heartbeat for {} ms", agent,
               registry_.dead_after().count());
  for (auto& [id, call] : pending_.take_for_agent(agent)) {
    fail_pending(id, call, Status(Code::kUnavailable, "agent " + agent + " was lost (no heartbeat for " +
                                                          std::to_string(registry_.dead_after().count()) +
                                                          " ms) while waiting for " + call.what));
  }
}

void Broker::on_agent_stopping(const std::string& agent, const std::string& why) {
  registry_.mark_stopped(agent, why);
  spdlog::warn("agent {} is going away: {}", agent, why);
  for (auto& [id, call] : pending_.take_for_agent(agent)) {
    fail_pending(id, call, Status(Code::kUnavailable, "agent " + agent + " went away (" + why +
                                                          ") while waiting for " + call.what));
  }
}

// ---- Client requests ----------------------------------------------------------------

void Broker::on_agents(const Inbound& in, const proto::Envelope& e, Time now) {
  proto::AgentsReply r;
  for (const auto& [id, entry] : registry_.agents()) r.agents.push_back(registry_.info(entry, now));
  reply(in, e.id, proto::encode_reply(e.id, r));
}

void Broker::on_snapshots(const Inbound& in, const proto::Envelope& e) {
  auto req = e.as<proto::SnapshotsRequest>();
  if (!req.ok()) return reply_error(in, e.id, req.status());
  Status valid = validate_agent_id(req->agent);
  if (valid.ok()) valid = validate_dataset_name(req->dataset);
  if (!valid.ok()) return reply_error(in, e.id, valid);
  const AgentEntry* agent = registry_.find(req->agent);
  if (agent == nullptr) {
    return reply_error(in, e.id, Status(Code::kNotFound, "agent " + req->agent +
                                                             " is not registered (see zpsctl agents)"));
  }
  if (!agent->alive) {
    return reply_error(in, e.id, Status(Code::kUnavailable, "agent " + req->agent +
                                                                " is not alive; check its zps-agent"));
  }
  const uint64_t id = next_request_id();
  PendingCall call;
  call.origin_peer = in.peer;
  call.origin_id = e.id;
  call.to_agent = req->agent;
  call.deadline = Clock::now() + kForwardTimeout;
  call.what = "snapshots of " + req->agent + ":" + req->dataset;
  pending_.add(id, std::move(call));
  send_control(*router_, agent->peer, proto::with_id(e, id));
}

void Broker::on_locks(const Inbound& in, const proto::Envelope& e) {
  proto::LocksReply r;
  for (const auto& l : locks_.list()) r.locks.push_back(LockTable::to_info(l));
  reply(in, e.id, proto::encode_reply(e.id, r));
}

// ---- Sending ------------------------------------------------------------------------

void Broker::reply(const Inbound& in, uint64_t, const std::string& body) {
  send_control(*router_, in.peer, body);
}

void Broker::reply_error(const Inbound& in, uint64_t re, const Status& status) {
  if (re == 0) return;
  send_control(*router_, in.peer, proto::encode_error(re, status));
}

void Broker::fail_pending(uint64_t, const PendingCall& call, const Status& why) {
  switch (call.kind) {
    case PendingCall::Kind::kForward:
      send_control(*router_, call.origin_peer, proto::encode_error(call.origin_id, why));
      return;
    case PendingCall::Kind::kJobStart: {
      Job* job = find_job(call.job);
      if (job != nullptr && !is_final(job->state)) {
        finish_job(*job, JobState::kFailed, why.message(), std::string(code_name(why.code())), true);
      }
      send_control(*router_, call.origin_peer, proto::encode_error(call.origin_id, why));
      return;
    }
    case PendingCall::Kind::kJobCancel:
      return;  // the orphan check ends the job if its sender is gone
  }
}

}  // namespace zps::broker
