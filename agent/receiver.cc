#include "agent/receiver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>

#include "agent/bus.h"
#include "shared/curve.h"
#include "shared/names.h"

namespace zps::agent {
namespace {

// Finished sessions are kept this long so a late recv_result still gets its answer.
constexpr auto kKeepFinished = std::chrono::minutes(10);
constexpr size_t kMaxFinishedKept = 1000;
// How long zfs recv that stopped reading gets to exit and say why before it is killed.
constexpr auto kOwnExitGrace = std::chrono::seconds(5);

std::string hop_label(uint64_t job, uint32_t hop) {
  return "job " + std::to_string(job) + " hop " + std::to_string(hop);
}

// Without force, an incremental's base must still be the target's latest snapshot:
// the planner saw it so, but someone may have snapshotted the target since.
Status check_base_is_latest(Zfs& zfs, const proto::PrepareRequest& req) {
  auto snaps = zfs.list_snapshots(req.dataset);
  if (!snaps.ok()) return snaps.status();
  if (!snaps->empty() && snaps->back().guid == req.rollback_guid) return Status::Ok();
  for (const auto& s : *snaps) {
    if (s.guid != req.rollback_guid) continue;
    return Status(Code::kTargetNewer,
                  "target " + req.dataset + " got snapshots after @" + s.name +
                      ", the base of this incremental, while the job ran (the latest is @" +
                      snaps->back().name + "); run again to see them, or with --force to "
                      "roll them back");
  }
  return Status(Code::kDiverged, "target " + req.dataset + " no longer has the base of this "
                                 "incremental (guid " + std::to_string(req.rollback_guid) +
                                 "); run again to re-plan");
}

}  // namespace

struct Receiver::Session {
  uint64_t id = 0;
  uint64_t job = 0;
  uint32_t hop = 0;
  uint64_t fence = 0;
  uint64_t to_guid = 0;
  std::string dataset;
  std::string snapshot;
  std::string sender;
  std::unique_ptr<Process> recv;
  ScopedZapKey zap_key;  // released after the listener (declared before it)
  std::unique_ptr<pipe::PipeListener> listener;
  std::atomic<bool> cancel{false};
  // Guarded by Receiver::mu_.
  std::string abort_reason;
  bool done = false;
  proto::RecvResultReply result;
  std::vector<uint64_t> waiters;
  std::chrono::steady_clock::time_point done_at;
  std::thread thread;
};

Receiver::Receiver(Zfs& zfs, zmq::context_t& ctx, ReceiverConfig config)
    : zfs_(zfs), ctx_(ctx), config_(std::move(config)) {}

Receiver::~Receiver() {
  abort_all("the agent is stopping");
  std::map<uint64_t, std::unique_ptr<Session>> sessions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sessions.swap(sessions_);
  }
  for (auto& [id, s] : sessions) {
    if (s->thread.joinable()) s->thread.join();
  }
}

Status Receiver::prepare_roots() {
  for (const auto& root : config_.roots) {
    ZPS_RETURN_IF_ERROR(validate_dataset_name(root).with_context("--recv-root"));
    auto exists = zfs_.exists(root);
    if (!exists.ok()) return exists.status().with_context("--recv-root " + root);
    if (*exists) {
      ZPS_RETURN_IF_ERROR(quiet_atime(root));
      continue;
    }
    const std::string pool = root.substr(0, root.find('/'));
    auto pool_exists = zfs_.exists(pool);
    if (!pool_exists.ok()) return pool_exists.status().with_context("--recv-root " + root);
    if (!*pool_exists) {
      return Status(Code::kNotFound, "receive root " + root + ": pool " + pool +
                                         " does not exist on this node; create it or fix --recv-root");
    }
    ZPS_RETURN_IF_ERROR(zfs_.create_unmounted(root).with_context("creating receive root " + root));
    spdlog::info("created receive root {} (not mounted)", root);
    ZPS_RETURN_IF_ERROR(quiet_atime(root));
  }
  return Status::Ok();
}

// Reading a received dataset with atime on modifies it, and the next incremental receive
// then fails ("destination has been modified"); received datasets inherit the root's
// atime, so the root gets atime=off.
Status Receiver::quiet_atime(const std::string& root) {
  auto atime = zfs_.get_property(root, "atime");
  if (!atime.ok()) return atime.status().with_context("receive root " + root);
  if (*atime == "off") return Status::Ok();
  ZPS_RETURN_IF_ERROR(zfs_.set_property(root, "atime", "off").with_context("receive root " + root));
  spdlog::info("set atime=off on receive root {} (and so on what it receives): reading a "
               "backup must not block its next incremental",
               root);
  return Status::Ok();
}

Status Receiver::roll_back_for(const proto::PrepareRequest& req) {
  auto snaps = zfs_.list_snapshots(req.dataset);
  if (!snaps.ok()) return snaps.status();
  for (size_t i = 0; i < snaps->size(); ++i) {
    if ((*snaps)[i].guid != req.rollback_guid) continue;
    if (i + 1 == snaps->size()) return Status::Ok();  // nothing newer to roll back
    const std::string to = req.dataset + "@" + (*snaps)[i].name;
    spdlog::warn("job {}: rolling {} back to @{} (--force): destroying {} newer snapshot(s)",
                 req.job, req.dataset, (*snaps)[i].name, snaps->size() - i - 1);
    return zfs_.rollback(to);
  }
  return Status(Code::kRefused, "cannot roll " + req.dataset + " back: it has no snapshot with guid " +
                                    std::to_string(req.rollback_guid));
}

std::string Receiver::root_of(const std::string& dataset) const {
  for (const auto& root : config_.roots) {
    if (is_same_or_below(dataset, root)) return root;
  }
  return {};
}

Status Receiver::check_under_root(const std::string& dataset) const {
  if (!root_of(dataset).empty()) return Status::Ok();
  std::string roots;
  for (const auto& r : config_.roots) roots += (roots.empty() ? "" : ", ") + r;
  return Status(Code::kOutsideRoot,
                "refusing " + quote_name(dataset) + ": it is outside every receive root of this agent (" +
                    (roots.empty() ? std::string("none: this agent only sends") : roots) + ")");
}

Result<proto::TargetStateReply> Receiver::target_state(const proto::TargetStateRequest& req) {
  ZPS_RETURN_IF_ERROR(validate_dataset_name(req.dataset));
  ZPS_RETURN_IF_ERROR(check_under_root(req.dataset));
  proto::TargetStateReply r;
  auto exists = zfs_.exists(req.dataset);
  if (!exists.ok()) return exists.status();
  r.exists = *exists;
  if (r.exists) {
    auto snaps = zfs_.list_snapshots(req.dataset);
    if (!snaps.ok()) return snaps.status();
    for (const auto& s : *snaps) r.snapshots.push_back({s.name, s.guid, s.createtxg});
  }
  if (req.origin_guid != 0) {
    auto found = zfs_.find_snapshot_by_guid(root_of(req.dataset), req.origin_guid);
    if (!found.ok()) return found.status();
    r.origin_present = found->has_value();
    if (r.origin_present) r.origin_name = **found;
  }
  return r;
}

Status Receiver::check_admission(const proto::PrepareRequest& req) {
  if (receiving_.count(req.dataset)) {
    uint64_t holder = 0;
    for (const auto& [id, s] : sessions_) {
      if (!s->done && s->dataset == req.dataset) holder = s->job;
    }
    if (holder == req.job) {
      // The same job retrying while its earlier try still finishes: worth another try.
      return Status(Code::kUnavailable, "dataset " + req.dataset +
                                            " is still receiving an earlier try of this job");
    }
    return Status(Code::kRefused, "dataset " + req.dataset + " is already receiving (job " +
                                      std::to_string(holder) +
                                      "); a second receive into it is refused");
  }
  auto f = fences_.find(req.dataset);
  if (f != fences_.end() && req.fence < f->second) {
    return Status(Code::kRefused, "stale fencing token " + std::to_string(req.fence) + " for " +
                                      req.dataset + ": a newer job (token " +
                                      std::to_string(f->second) +
                                      ") has received here, so this job no longer holds the lock");
  }
  if (running_.load() >= static_cast<uint32_t>(config_.max_recvs)) {
    return Status(Code::kBusy, "busy: " + std::to_string(running_.load()) +
                                          " receives running (--max-recvs " +
                                          std::to_string(config_.max_recvs) + "); try again later");
  }
  return Status::Ok();
}

Result<proto::PrepareReply> Receiver::prepare(const proto::PrepareRequest& req) {
  ZPS_RETURN_IF_ERROR(validate_dataset_name(req.dataset));
  ZPS_RETURN_IF_ERROR(validate_snapshot_component(req.snapshot));
  ZPS_RETURN_IF_ERROR(check_under_root(req.dataset));

  auto s = std::make_unique<Session>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    reap_finished();
    ZPS_RETURN_IF_ERROR(check_admission(req));
    receiving_.insert(req.dataset);
    uint64_t& fence = fences_[req.dataset];
    fence = std::max(fence, req.fence);
    s->id = next_session_++;
    uint32_t now_running = ++running_;
    uint32_t peak = peak_.load();
    while (now_running > peak && !peak_.compare_exchange_weak(peak, now_running)) {
    }
  }
  s->job = req.job;
  s->hop = req.hop;
  s->fence = req.fence;
  s->to_guid = req.to_guid;
  s->dataset = req.dataset;
  s->snapshot = req.snapshot;
  s->sender = req.sender;

  auto undo = [&](const Status& why) {
    std::lock_guard<std::mutex> lock(mu_);
    receiving_.erase(req.dataset);
    --running_;
    return why;
  };
  // Before anything is created or spawned: under CURVE a prepare without the sender's
  // key is refused.
  auto pipe_options = session_pipe(s.get(), req);
  if (!pipe_options.ok()) return undo(pipe_options.status());
  const std::string parent(parent_dataset(req.dataset));
  // An incremental goes into a dataset that has its base (checked below), so its parent
  // exists: only a full receive asks zfs, which saves a zfs command on every other hop.
  if (req.rollback_guid == 0 && req.dataset != root_of(req.dataset) && !parent.empty()) {
    auto exists = zfs_.exists(parent);
    if (!exists.ok()) return undo(exists.status());
    if (!*exists) {
      if (Status c = zfs_.create_unmounted(parent); !c.ok()) {
        auto again = zfs_.exists(parent);  // a concurrent session may have made it
        if (!again.ok() || !*again) return undo(c);
      }
    }
  }
  // A plain incremental needs no look at the target: zfs recv without -F refuses by
  // itself, changing nothing, unless the base is the latest snapshot and the target is
  // unmodified since. It saves a listing that grows with the target's snapshots.
  const bool plain = req.plain && req.rollback_guid != 0 && !req.force;
  if (req.force && req.rollback_guid != 0) {
    if (Status r = roll_back_for(req); !r.ok()) return undo(r);
  } else if (req.rollback_guid != 0 && !plain) {
    if (Status r = check_base_is_latest(zfs_, req); !r.ok()) return undo(r);
  }
  // A checked incremental is received with -F even without force: receiving a child
  // dataset mounts it, which creates its mountpoint directory in the parent, and a plain
  // recv then refuses the parent's next incremental ("modified since most recent
  // snapshot"). The base was just checked to be the latest snapshot, so -F discards
  // only changes made since it, never a snapshot.
  // Only a stream that makes the dataset (full, or a clone's first) mounts one.
  auto recv = zfs_.start_recv(RecvSpec{req.dataset, !plain && (req.force || req.rollback_guid != 0),
                                       req.rollback_guid == 0});
  if (!recv.ok()) return undo(recv.status());
  s->recv = std::move(*recv);
  const std::string token = pipe::make_token();
  auto listener = pipe::PipeListener::bind(ctx_, config_.bind_host, config_.advertise_host,
                                           config_.port_lo, config_.port_hi, token, *pipe_options);
  if (!listener.ok()) {
    s->recv->kill(SIGKILL);
    s->recv->wait();
    return undo(listener.status());
  }
  s->listener = std::move(*listener);

  proto::PrepareReply reply{s->listener->endpoint(), token, s->id,
                            config_.keys ? config_.keys->public_z85 : std::string()};
  spdlog::info("receiving {}@{} from {} ({}, {}{}) on {}", s->dataset, s->snapshot, s->sender,
               hop_label(s->job, s->hop), "fence " + std::to_string(s->fence),
               plain ? ", plain" : req.force ? ", -F" : "", reply.endpoint);
  Session* raw = s.get();
  std::lock_guard<std::mutex> lock(mu_);
  sessions_[raw->id] = std::move(s);
  raw->thread = std::thread([this, raw] { run_session(raw); });
  return reply;
}

Result<pipe::Options> Receiver::session_pipe(Session* s, const proto::PrepareRequest& req) {
  pipe::Options options = config_.pipe;
  if (!config_.keys || config_.zap_keys == nullptr) return options;
  if (req.sender_key.empty()) {
    return Status(Code::kRefused, "the prepare for " + req.dataset +
                                      " names no sender key; this agent receives only over "
                                      "CURVE (is the broker running with --key?)");
  }
  const std::string domain = data_zap_domain(std::to_string(s->id));
  auto guard = ScopedZapKey::add(*config_.zap_keys, domain, req.sender_key, "agent:" + req.sender);
  if (!guard.ok()) return guard.status().with_context("sender key of " + req.sender);
  s->zap_key = std::move(*guard);
  options.configure_socket = curve_server_setup(*config_.keys, domain);
  return options;
}

void Receiver::run_session(Session* s) {
  proto::RecvResultReply r;
  auto stats = s->listener->receive_to(s->recv->stdin_fd(), s->cancel);
  s->listener.reset();
  s->zap_key.reset();  // the data socket is closed: its key need not be let in any more
  if (!stats.ok()) {
    // A failed write that no abort caused means zfs recv closed its input: it gave up
    // by itself (out of space, a stream it refuses) and is saying why, so it gets a
    // moment to finish and its words reach the sender. Any other failure (gap, bad
    // hash, stall, abort) is killed at once, before closing stdin: zfs recv must not
    // see a clean end of a cut stream.
    std::optional<ExitStatus> own;
    if (stats.status().code() == Code::kIoError && !s->cancel.load()) {
      own = s->recv->wait_for(kOwnExitGrace);
    }
    if (!own) s->recv->kill(SIGKILL);
    ExitStatus st = own ? *own : s->recv->wait();
    // Then close it at once: zfs-fuse's zfs hands the descriptor to its daemon, which
    // goes on receiving after the kill and keeps the dataset busy until it reads EOF
    // (and the session, with this pipe, is kept for minutes).
    s->recv->close_stdin();
    std::string reason;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reason = s->abort_reason;
    }
    if (reason.empty()) reason = stats.status().message();
    r.ok = false;
    // zfs recv's exit status is its verdict only when it stopped reading by itself (the
    // write failed). After a gap, a bad hash or a stall it may have choked on the cut
    // stream first ("invalid backup stream"): a consequence of the broken pipe, which
    // the sender must see as such, and retry.
    r.exit_code = stats.status().code() == Code::kIoError ? st.code : -1;
    r.reason = reason;
    r.stderr_text = s->recv->stderr_text();
    if (own) {
      spdlog::warn("receive of {}@{} ({}) failed: zfs recv stopped reading and exited ({}): {}",
                   s->dataset, s->snapshot, hop_label(s->job, s->hop), st.describe(),
                   r.stderr_text.empty() ? "no message" : r.stderr_text);
    } else {
      spdlog::warn("receive of {}@{} ({}) aborted: {}; zfs recv was killed, nothing was committed",
                   s->dataset, s->snapshot, hop_label(s->job, s->hop), reason);
    }
    return finish_session(s, std::move(r));
  }
  s->recv->close_stdin();
  ExitStatus st = s->recv->wait();
  r.exit_code = st.code;
  r.bytes = stats->bytes;
  auto guid = zfs_.guid(s->dataset + "@" + s->snapshot);
  if (!st.ok()) {
    std::string aborted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      aborted = s->abort_reason;
    }
    r.stderr_text = s->recv->stderr_text();
    // zfs-fuse sometimes reports an error after committing a forced full receive: the
    // guid decides, not the exit status.
    const bool arrived = aborted.empty() && guid.ok() && *guid == s->to_guid;
    if (!arrived) {
      r.reason = aborted.empty() ? "zfs recv failed (" + st.describe() + ")" : aborted;
      spdlog::warn("zfs recv into {} ({}) failed: {} {}", s->dataset, hop_label(s->job, s->hop),
                   st.describe(), r.stderr_text);
      return finish_session(s, std::move(r));
    }
    spdlog::warn("zfs recv into {} ({}) said {} ({}), but {}@{} arrived with the right guid",
                 s->dataset, hop_label(s->job, s->hop), st.describe(), r.stderr_text, s->dataset,
                 s->snapshot);
  }
  if (!guid.ok() || *guid != s->to_guid) {
    r.reason = guid.ok() ? "zfs recv succeeded but " + s->dataset + "@" + s->snapshot +
                               " has guid " + std::to_string(*guid) + ", not the " +
                               std::to_string(s->to_guid) + " that was sent"
                         : guid.status().message();
    return finish_session(s, std::move(r));
  }
  r.ok = true;
  r.guid = *guid;
  r.snapshot = s->snapshot;
  spdlog::info("received {}@{} ({}, {} bytes in {:.3f} s)", s->dataset, s->snapshot,
               hop_label(s->job, s->hop), stats->bytes, stats->seconds);
  finish_session(s, std::move(r));
}

void Receiver::finish_session(Session* s, proto::RecvResultReply result) {
  std::vector<uint64_t> waiters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s->done = true;
    s->done_at = std::chrono::steady_clock::now();
    s->result = result;
    waiters.swap(s->waiters);
    receiving_.erase(s->dataset);
    --running_;
  }
  if (waiters.empty()) return;
  BusClient bus(ctx_, config_.bus_endpoint);
  for (uint64_t w : waiters) bus.send(proto::encode_reply(w, result));
}

std::optional<Result<proto::RecvResultReply>> Receiver::result(uint64_t job, uint64_t session,
                                                               uint64_t request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end() || it->second->job != job) {
    return Result<proto::RecvResultReply>(
        Status(Code::kNotFound, "no receive session " + std::to_string(session) + " of job " +
                                    std::to_string(job) + " on this agent (did it restart?)"));
  }
  Session& s = *it->second;
  if (s.done) return Result<proto::RecvResultReply>(s.result);
  s.waiters.push_back(request_id);
  return std::nullopt;
}

void Receiver::abort(uint64_t job, uint64_t session, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, s] : sessions_) {
    if (s->done || s->job != job || (session != 0 && id != session)) continue;
    if (s->abort_reason.empty()) s->abort_reason = "aborted: " + reason;
    s->cancel.store(true);
    s->recv->kill(SIGKILL);
  }
}

void Receiver::abort_all(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, s] : sessions_) {
    if (s->done) continue;
    if (s->abort_reason.empty()) s->abort_reason = "aborted: " + reason;
    s->cancel.store(true);
    s->recv->kill(SIGKILL);
  }
}

std::vector<proto::ActiveRecv> Receiver::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<proto::ActiveRecv> out;
  for (const auto& [id, s] : sessions_) {
    if (!s->done) out.push_back({s->job, s->dataset, s->fence});
  }
  return out;
}

void Receiver::reap_finished() {
  const auto now = std::chrono::steady_clock::now();
  size_t finished = 0;
  for (const auto& [id, s] : sessions_) finished += s->done ? 1 : 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = *it->second;
    const bool old = s.done && (now - s.done_at > kKeepFinished || finished > kMaxFinishedKept);
    if (old) {
      if (s.thread.joinable()) s.thread.join();  // already past finish_session
      --finished;
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace zps::agent
