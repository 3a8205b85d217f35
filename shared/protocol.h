// The control protocol: every message zpsend's programs exchange over the broker, and
// the envelope that carries them.
//
// On the wire a control message is two frames after any ROUTER routing frames:
//   1. the signature "ZPS1" (protocol name and major version);
//   2. one msgpack map with `t` (the type), `id` for requests, and for replies `re` (the
//      request's id), `ok`, and either the result's fields or `err: {code, msg}`.
// Requests are answered with t = "reply"; notices (heartbeats, events) have id 0 and get
// no reply. Each message struct below names its type in kType and lists its fields once
// in fields(); wire.h packs and checks them.
//
// Who sends what:
//   agent -> broker   hello, heartbeat, job_update, job_end, and, inside a job it runs,
//                     target_state / prepare / recv_result / abort for the broker to
//                     forward to that job's receiver
//   broker -> agent   heartbeat, reregister, job_start, job_cancel, and forwarded
//                     snapshots / target_state / prepare / recv_result / abort
//   zpsctl -> broker  agents, snapshots, replicate, jobs, job, watch, cancel, locks
//   broker -> zpsctl  replies, and job_event notices to watchers
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/status.h"
#include "shared/wire.h"

namespace zps::proto {

inline constexpr std::string_view kSignature = "ZPS1";
inline constexpr std::string_view kReplyType = "reply";

// ---- Shared shapes -----------------------------------------------------------------

struct WireError {
  std::string code;  // code_name() of a zps::Code
  std::string msg;
  template <class V>
  void fields(V& v) {
    v("code", code);
    v("msg", msg);
  }
};

struct PoolSpace {
  std::string name;
  uint64_t free = 0;
  template <class V>
  void fields(V& v) {
    v("name", name);
    v("free", free);
  }
};

struct Capabilities {
  bool list_parsable = false;
  bool resume_tokens = false;
  bool bookmarks = false;
  bool holds = false;
  bool send_estimate = false;
  bool recv_no_mount = false;
  template <class V>
  void fields(V& v) {
    v("list_p", list_parsable);
    v("resume", resume_tokens);
    v("bookmarks", bookmarks);
    v("holds", holds);
    v("send_estimate", send_estimate);
    v("recv_no_mount", recv_no_mount);
  }
};

struct Snapshot {
  std::string name;  // short name, after '@'
  uint64_t guid = 0;
  uint64_t createtxg = 0;
  template <class V>
  void fields(V& v) {
    v("name", name);
    v("guid", guid);
    v("createtxg", createtxg);
  }
};

// A receive a receiver is running, as reported in hello and heartbeats (the broker
// releases a dead sender's locks only when the receiver no longer reports them).
struct ActiveRecv {
  uint64_t job = 0;
  std::string dataset;
  uint64_t fence = 0;
  template <class V>
  void fields(V& v) {
    v("job", job);
    v("dataset", dataset);
    v("fence", fence);
  }
};

struct Load {
  uint32_t active_recvs = 0;
  // Most receives this agent ran at the same time since it started: shows that a
  // receiver really takes many receives at once.
  uint32_t peak_recvs = 0;
  uint32_t running_jobs = 0;
  std::vector<ActiveRecv> recvs;
  std::vector<uint64_t> jobs;  // jobs this agent runs as sender
  template <class V>
  void fields(V& v) {
    v("active_recvs", active_recvs);
    v("peak_recvs", peak_recvs);
    v("running_jobs", running_jobs);
    v("recvs", recvs);
    v("jobs", jobs);
  }
};

struct AgentInfo {
  std::string id;
  std::string host;
  std::string version;
  bool alive = false;
  std::vector<std::string> recv_roots;
  uint32_t active_recvs = 0;
  uint32_t max_recvs = 0;
  uint32_t peak_recvs = 0;  // see Load
  uint32_t running_jobs = 0;
  std::string data_address;
  std::vector<PoolSpace> pools;
  uint64_t last_seen_ms = 0;  // ms since the broker last heard from it
  template <class V>
  void fields(V& v) {
    v("id", id);
    v("host", host);
    v("version", version);
    v("alive", alive);
    v("recv_roots", recv_roots);
    v("active_recvs", active_recvs);
    v("max_recvs", max_recvs);
    v("peak_recvs", peak_recvs);
    v("running_jobs", running_jobs);
    v("data_address", data_address);
    v("pools", pools);
    v("last_seen_ms", last_seen_ms);
  }
};

// One hop of a job, as the broker records it.
struct HopInfo {
  uint32_t n = 0;        // 1-based hop number within the job
  std::string dataset;   // source dataset
  std::string from;      // short snapshot name, or origin full name, or "" for full
  std::string to;
  uint64_t bytes = 0;
  std::string state;     // running succeeded failed
  double seconds = 0;
  std::string error;
  template <class V>
  void fields(V& v) {
    v("n", n);
    v("dataset", dataset);
    v("from", from);
    v("to", to);
    v("bytes", bytes);
    v("state", state);
    v("seconds", seconds);
    v("error", error);
  }
};

struct JobInfo {
  uint64_t id = 0;
  std::string state;   // queued running succeeded failed cancelled
  std::string source;  // "agent:dataset"
  std::string target;  // "agent:dataset"
  bool recursive = false;
  bool force = false;
  std::string error;
  std::string error_code;
  std::vector<std::string> warnings;
  uint64_t created_ms = 0;  // unix ms
  uint64_t ended_ms = 0;
  uint64_t bytes = 0;
  uint32_t hops_done = 0;
  std::vector<HopInfo> hops;  // only in job / replicate replies
  template <class V>
  void fields(V& v) {
    v("id", id);
    v("state", state);
    v("source", source);
    v("target", target);
    v("recursive", recursive);
    v("force", force);
    v("error", error);
    v("error_code", error_code);
    v("warnings", warnings);
    v("created_ms", created_ms);
    v("ended_ms", ended_ms);
    v("bytes", bytes);
    v("hops_done", hops_done);
    v("hops", hops);
  }
};

struct LockInfo {
  std::string agent;
  std::string dataset;
  bool recursive = false;
  uint64_t job = 0;
  uint64_t fence = 0;
  template <class V>
  void fields(V& v) {
    v("agent", agent);
    v("dataset", dataset);
    v("recursive", recursive);
    v("job", job);
    v("fence", fence);
  }
};

// ---- Registration and liveness -----------------------------------------------------

struct Hello {
  static constexpr std::string_view kType = "hello";
  std::string agent;
  std::string host;
  std::string version;
  std::string data_address;
  std::vector<std::string> recv_roots;
  std::vector<PoolSpace> pools;
  uint32_t max_recvs = 0;
  Capabilities caps;
  Load load;
  // Random per agent process: tells a restarted agent from a second process started
  // with the same --id by mistake.
  uint64_t instance = 0;
  template <class V>
  void fields(V& v) {
    v("instance", instance);
    v("agent", agent);
    v("host", host);
    v("version", version);
    v("data_address", data_address);
    v("recv_roots", recv_roots);
    v("pools", pools);
    v("max_recvs", max_recvs);
    v("caps", caps);
    v("load", load);
  }
};

struct HelloReply {
  std::string broker_version;
  uint32_t heartbeat_ms = 0;
  uint32_t liveness = 0;  // missed heartbeats before a peer counts as dead
  template <class V>
  void fields(V& v) {
    v("broker_version", broker_version);
    v("heartbeat_ms", heartbeat_ms);
    v("liveness", liveness);
  }
};

// Both directions; a notice. The agent's carries its load.
struct Heartbeat {
  static constexpr std::string_view kType = "heartbeat";
  Load load;
  std::vector<PoolSpace> pools;
  // Set only in an agent's last heartbeat, when it stops on purpose (SIGTERM): why. The
  // broker then counts it gone at once, and says so to jobs that need it.
  std::string stopping;
  template <class V>
  void fields(V& v) {
    v("load", load);
    v("pools", pools);
    v("stopping", stopping);
  }
};

// Broker -> agent notice: "I do not know you (any more); send hello".
struct Reregister {
  static constexpr std::string_view kType = "reregister";
  template <class V>
  void fields(V&) {}
};

// ---- zpsctl requests ---------------------------------------------------------------

struct AgentsRequest {
  static constexpr std::string_view kType = "agents";
  template <class V>
  void fields(V&) {}
};

struct AgentsReply {
  std::vector<AgentInfo> agents;
  template <class V>
  void fields(V& v) {
    v("agents", agents);
  }
};

// zpsctl -> broker, and broker -> agent (forwarded).
struct SnapshotsRequest {
  static constexpr std::string_view kType = "snapshots";
  std::string agent;
  std::string dataset;
  template <class V>
  void fields(V& v) {
    v("agent", agent);
    v("dataset", dataset);
  }
};

struct SnapshotsReply {
  std::vector<Snapshot> snapshots;
  template <class V>
  void fields(V& v) {
    v("snapshots", snapshots);
  }
};

struct ReplicateRequest {
  static constexpr std::string_view kType = "replicate";
  std::string source_agent;
  std::string source_dataset;
  std::string target_agent;    // empty: the broker chooses
  std::string target_dataset;  // empty: <recv root>/<source agent>/<source dataset>
  bool recursive = false;
  bool force = false;
  template <class V>
  void fields(V& v) {
    v("source_agent", source_agent);
    v("source_dataset", source_dataset);
    v("target_agent", target_agent);
    v("target_dataset", target_dataset);
    v("recursive", recursive);
    v("force", force);
  }
};

struct JobReply {
  JobInfo job;
  template <class V>
  void fields(V& v) {
    v("job", job);
  }
};

struct JobsRequest {
  static constexpr std::string_view kType = "jobs";
  bool all = false;
  template <class V>
  void fields(V& v) {
    v("all", all);
  }
};

struct JobsReply {
  std::vector<JobInfo> jobs;
  template <class V>
  void fields(V& v) {
    v("jobs", jobs);
  }
};

struct JobRequest {
  static constexpr std::string_view kType = "job";
  uint64_t job = 0;
  template <class V>
  void fields(V& v) {
    v("job", job);
  }
};

// Replied with the job's current state; job_event notices follow until it ends.
struct WatchRequest {
  static constexpr std::string_view kType = "watch";
  uint64_t job = 0;
  template <class V>
  void fields(V& v) {
    v("job", job);
  }
};

struct CancelRequest {
  static constexpr std::string_view kType = "cancel";
  uint64_t job = 0;
  template <class V>
  void fields(V& v) {
    v("job", job);
  }
};

struct LocksRequest {
  static constexpr std::string_view kType = "locks";
  template <class V>
  void fields(V&) {}
};

struct LocksReply {
  std::vector<LockInfo> locks;
  template <class V>
  void fields(V& v) {
    v("locks", locks);
  }
};

// Broker -> watcher notice: something happened in a job.
struct JobEvent {
  static constexpr std::string_view kType = "job_event";
  uint64_t job = 0;
  std::string kind;     // hop_started progress hop_done warning ended
  std::string dataset;
  uint32_t hop = 0;     // hop number within the job
  uint32_t of = 0;      // hops expected for this dataset at the time (may grow)
  std::string from;
  std::string to;
  uint64_t bytes = 0;
  double rate = 0;      // bytes per second
  std::string message;
  JobInfo state;        // the job as it stands (hops omitted)
  template <class V>
  void fields(V& v) {
    v("job", job);
    v("kind", kind);
    v("dataset", dataset);
    v("hop", hop);
    v("of", of);
    v("from", from);
    v("to", to);
    v("bytes", bytes);
    v("rate", rate);
    v("message", message);
    v("state", state);
  }
};

// ---- Jobs: broker <-> sender -------------------------------------------------------

// Broker -> sender agent: run this job. Replied when accepted (or refused: the source
// does not exist, the agent is shutting down).
struct JobStart {
  static constexpr std::string_view kType = "job_start";
  uint64_t job = 0;
  std::string source_dataset;
  std::string target_agent;
  std::string target_dataset;
  bool recursive = false;
  bool force = false;
  uint64_t fence = 0;
  template <class V>
  void fields(V& v) {
    v("job", job);
    v("source_dataset", source_dataset);
    v("target_agent", target_agent);
    v("target_dataset", target_dataset);
    v("recursive", recursive);
    v("force", force);
    v("fence", fence);
  }
};

struct JobCancel {
  static constexpr std::string_view kType = "job_cancel";
  uint64_t job = 0;
  template <class V>
  void fields(V& v) {
    v("job", job);
  }
};

// Sender -> broker notice: progress inside a job (becomes a JobEvent for watchers and
// a hop record in the store).
struct JobUpdate {
  static constexpr std::string_view kType = "job_update";
  uint64_t job = 0;
  std::string kind;  // hop_started progress hop_done hop_failed warning
  std::string dataset;
  uint32_t hop = 0;
  uint32_t of = 0;
  std::string from;
  std::string to;
  uint64_t bytes = 0;
  double rate = 0;
  double seconds = 0;
  std::string message;
  template <class V>
  void fields(V& v) {
    v("job", job);
    v("kind", kind);
    v("dataset", dataset);
    v("hop", hop);
    v("of", of);
    v("from", from);
    v("to", to);
    v("bytes", bytes);
    v("rate", rate);
    v("seconds", seconds);
    v("message", message);
  }
};

// Sender -> broker request: the job is over. The broker releases its locks and replies;
// the sender repeats it until it gets the reply (across broker restarts).
struct JobEnd {
  static constexpr std::string_view kType = "job_end";
  uint64_t job = 0;
  std::string state;  // succeeded failed cancelled
  std::string error;
  std::string error_code;
  // True when the sender knows no receive of this job is still running (every session
  // answered or was aborted); otherwise the broker waits for the receiver to stop
  // reporting one before it releases the job's locks.
  bool receives_settled = false;
  template <class V>
  void fields(V& v) {
    v("job", job);
    v("state", state);
    v("error", error);
    v("error_code", error_code);
    v("receives_settled", receives_settled);
  }
};

// ---- Receives: sender -> (broker) -> receiver --------------------------------------

// What the target holds. origin_guid != 0 asks whether the receiver has a snapshot with
// that guid under the target's receive root (a clone's origin).
struct TargetStateRequest {
  static constexpr std::string_view kType = "target_state";
  uint64_t job = 0;
  std::string dataset;
  uint64_t origin_guid = 0;
  template <class V>
  void fields(V& v) {
    v("job", job);
    v("dataset", dataset);
    v("origin_guid", origin_guid);
  }
};

struct TargetStateReply {
  bool exists = false;
  std::vector<Snapshot> snapshots;
  bool origin_present = false;
  std::string origin_name;
  template <class V>
  void fields(V& v) {
    v("exists", exists);
    v("snapshots", snapshots);
    v("origin_present", origin_present);
    v("origin_name", origin_name);
  }
};

// Start a receive session: the receiver checks its lock and the fence, spawns zfs recv,
// binds a PULL socket and answers with the endpoint and a one-time token.
struct PrepareRequest {
  static constexpr std::string_view kType = "prepare";
  uint64_t job = 0;
  uint32_t hop = 0;
  std::string dataset;  // target dataset
  uint64_t fence = 0;
  bool force = false;   // zfs recv -F
  uint64_t to_guid = 0;
  std::string snapshot;  // short name of the snapshot the hop delivers
  // An incremental's base (the common snapshot), 0 for full streams. With force: roll
  // the target back to it before receiving (zfs-fuse's recv -F does not do it for
  // incremental streams). Without: it must be the target's latest snapshot, and
  // changes made since it are discarded (recv -F).
  uint64_t rollback_guid = 0;
  // An incremental without force, received as a plain `zfs recv` (no -F) and without
  // listing the target first: zfs itself then refuses, changing nothing, when the target
  // has a snapshot after the base or was modified since it. The sender repeats a refused
  // plain hop without it (checked: the base must be the latest snapshot, then recv -F).
  bool plain = false;
  std::string sender;    // sending agent's id (stamped by the broker)
  // With CURVE: the sending agent's public key (Z85) from the broker's authorized keys,
  // the only key the session's data socket accepts (stamped by the broker).
  std::string sender_key;
  template <class V>
  void fields(V& v) {
    v("job", job);
    v("hop", hop);
    v("dataset", dataset);
    v("fence", fence);
    v("force", force);
    v("to_guid", to_guid);
    v("snapshot", snapshot);
    v("rollback_guid", rollback_guid);
    v("plain", plain);
    v("sender", sender);
    v("sender_key", sender_key);
  }
};

struct PrepareReply {
  std::string endpoint;  // tcp://host:port
  std::string token;     // hex, one per hop
  uint64_t session = 0;
  // With CURVE: the receiving agent's public key (Z85) for the sender's CURVE client;
  // the broker overwrites it from its authorized keys.
  std::string server_key;
  template <class V>
  void fields(V& v) {
    v("endpoint", endpoint);
    v("token", token);
    v("session", session);
    v("server_key", server_key);
  }
};

// Answered when the session's zfs recv has finished (a long poll).
struct RecvResultRequest {
  static constexpr std::string_view kType = "recv_result";
  uint64_t job = 0;
  uint64_t session = 0;
  template <class V>
  void fields(V& v) {
    v("job", job);
    v("session", session);
  }
};

struct RecvResultReply {
  bool ok = false;  // on the wire "succeeded": a reply's envelope already has an "ok"
  int32_t exit_code = -1;
  std::string stderr_text;
  std::string reason;  // why the session was aborted (gap, bad hash, stall, ...), if it was
  uint64_t bytes = 0;
  uint64_t guid = 0;   // guid of the snapshot the target now has
  std::string snapshot;
  template <class V>
  void fields(V& v) {
    v("succeeded", ok);
    v("exit_code", exit_code);
    v("stderr", stderr_text);
    v("reason", reason);
    v("bytes", bytes);
    v("guid", guid);
    v("snapshot", snapshot);
  }
};

struct AbortRequest {
  static constexpr std::string_view kType = "abort";
  uint64_t job = 0;
  uint64_t session = 0;  // 0: every session of the job
  std::string reason;
  template <class V>
  void fields(V& v) {
    v("job", job);
    v("session", session);
    v("reason", reason);
  }
};

struct Empty {
  template <class V>
  void fields(V&) {}
};

// ---- Envelope ----------------------------------------------------------------------

// A decoded control message: the envelope's keys, and the whole map for as<M>().
struct Envelope {
  std::string type;
  uint64_t id = 0;
  uint64_t re = 0;
  bool ok = true;
  WireError err;
  std::shared_ptr<msgpack::object_handle> body;

  bool is_reply() const { return type == kReplyType; }
  // The error a failed reply carries, as a Status.
  Status error_status() const;

  template <wire::HasFields M>
  Result<M> as() const {
    M out{};
    wire::Reader r(body->get());
    if (r.status().ok()) out.fields(r);
    if (!r.status().ok()) return r.status().with_context("in '" + type + "' message");
    return out;
  }
};

// Decodes the signature frame and the body frame. Every failure is a kProtocol Status.
Result<Envelope> decode(const void* sig, size_t sig_size, const void* body, size_t body_size);

namespace detail {
struct Head {
  std::string_view t;
  uint64_t id = 0;
  uint64_t re = 0;
  bool reply = false;
  bool ok = true;
};
template <wire::HasFields M>
std::string encode(const Head& h, const M& m) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  wire::Writer w(pk);
  uint32_t n = wire::Writer::count_fields(m) + 1 + (h.id ? 1 : 0) + (h.reply ? 2 : 0);
  w.begin_map(n);
  w("t", std::string(h.t));
  if (h.id) w("id", h.id);
  if (h.reply) {
    w("re", h.re);
    w("ok", h.ok);
  }
  w.fields_of(m);
  return std::string(buf.data(), buf.size());
}
}  // namespace detail

// Body frame of a request (id != 0) or a notice (id == 0) of type M::kType.
template <wire::HasFields M>
std::string encode_request(const M& m, uint64_t id) {
  return detail::encode(detail::Head{M::kType, id, 0, false, true}, m);
}
template <wire::HasFields M>
std::string encode_notice(const M& m) {
  return detail::encode(detail::Head{M::kType, 0, 0, false, true}, m);
}
// Body frame of a successful reply to request `re`.
template <wire::HasFields M>
std::string encode_reply(uint64_t re, const M& m) {
  return detail::encode(detail::Head{kReplyType, 0, re, true, true}, m);
}
// Body frame of a failed reply to request `re`.
std::string encode_error(uint64_t re, const Status& status);

// The same message with `re` (replies) or `id` (requests) replaced: how the broker passes
// a reply or request along under its own request ids. Other keys are copied as they are.
std::string with_id(const Envelope& e, uint64_t new_id);
// The same request with extra string fields set (the broker stamps `sender` on prepare).
std::string with_field(const Envelope& e, const std::string& key, const std::string& value);

}  // namespace zps::proto
