// The receiving side of an agent: receive sessions, many at once.
//
// A session is one hop: prepare() checks the target name against the receive roots,
// this agent's own per-dataset lock (a second receive into a dataset that is receiving
// is refused whatever the broker says) and the job's fencing token, creates missing
// intermediate datasets under the root (unmounted), spawns `zfs recv`, binds a fresh
// PULL endpoint with a one-time token, and returns at once; a thread per session then
// feeds the stream to `zfs recv`. Any pipe failure (gap, bad hash, stall, abort) kills
// `zfs recv`, so no partial snapshot appears, and the session's result says why.
// A successful session reports the guid of the snapshot the target now has.
//
// Thread-safety: all public methods may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "shared/keys.h"
#include "shared/pipe.h"
#include "shared/protocol.h"
#include "shared/zap.h"
#include "shared/zfs.h"

namespace zps::agent {

struct ReceiverConfig {
  std::vector<std::string> roots;
  int max_recvs = 8;
  std::string bind_host = "127.0.0.1";
  std::string advertise_host = "127.0.0.1";
  uint16_t port_lo = 6831;
  uint16_t port_hi = 6931;
  pipe::Options pipe;
  std::string bus_endpoint;  // where session threads send their late replies
  // CURVE (both set, or neither): this agent's keys, and the registry the agent's ZAP
  // handler consults, so each session's data socket accepts only its sender's key.
  std::optional<KeyPair> keys;
  ZapKeyRegistry* zap_keys = nullptr;
};

class Receiver {
 public:
  Receiver(Zfs& zfs, zmq::context_t& ctx, ReceiverConfig config);
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Makes sure every receive root exists, creating it (unmounted) when its pool does.
  Status prepare_roots();

  Result<proto::TargetStateReply> target_state(const proto::TargetStateRequest& req);
  Result<proto::PrepareReply> prepare(const proto::PrepareRequest& req);

  // The result of a session: now when it has finished, else nullopt and the reply to
  // `request_id` is sent over the bus when it finishes.
  std::optional<Result<proto::RecvResultReply>> result(uint64_t job, uint64_t session,
                                                       uint64_t request_id);

  // Aborts one session (or every session of the job when session is 0): zfs recv is
  // killed and the session's result carries `reason`.
  void abort(uint64_t job, uint64_t session, const std::string& reason);
  void abort_all(const std::string& reason);

  // The receives running now, for heartbeats.
  std::vector<proto::ActiveRecv> active() const;
  // Peak number of zfs recv processes that ran at the same time since start.
  uint32_t peak_concurrent() const { return peak_.load(); }

 private:
  struct Session;
  Status check_under_root(const std::string& dataset) const;
  // The pipe options of session `s`: under CURVE a server socket that lets in only
  // the sender's key (registered in s->zap_key for the session's lifetime).
  Result<pipe::Options> session_pipe(Session* s, const proto::PrepareRequest& req);
  Status quiet_atime(const std::string& root);
  Status roll_back_for(const proto::PrepareRequest& req);
  std::string root_of(const std::string& dataset) const;
  Status check_admission(const proto::PrepareRequest& req);  // under mu_
  void run_session(Session* s);
  void finish_session(Session* s, proto::RecvResultReply result);
  void reap_finished();  // under mu_

  Zfs& zfs_;
  zmq::context_t& ctx_;
  ReceiverConfig config_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::set<std::string> receiving_;            // datasets with a running session
  std::map<std::string, uint64_t> fences_;     // newest fence seen per dataset
  uint64_t next_session_ = 1;
  std::atomic<uint32_t> running_{0};
  std::atomic<uint32_t> peak_{0};
};

}  // namespace zps::agent
