// zps-broker's event loop: one ROUTER socket that agents and zpsctl connect to.
//
// The broker keeps the agent registry (hello, heartbeats, liveness), the job table, the
// lock table and placements, persists them in its Store, and routes control messages:
// zpsctl's requests, and inside a running job only the requests that job needs between
// its sender and its receiver. Data never passes through it.
//
// Thread-safety: run() owns every socket and table; stop() may be called from any
// thread (signal handlers set the flag it reads).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <zmq.hpp>

#include "broker/job.h"
#include "broker/lock_table.h"
#include "broker/options.h"
#include "broker/pending.h"
#include "broker/registry.h"
#include "broker/store.h"
#include "shared/authorized_keys.h"
#include "shared/channel.h"
#include "shared/keys.h"
#include "shared/zap.h"

namespace zps::broker {

class Broker {
 public:
  Broker(Options options, zmq::context_t& ctx);
  ~Broker();

  // Opens the store, restores state, binds. Errors name what failed.
  Status start();
  // Serves until `stop` becomes true, then persists and returns.
  void run(const std::atomic<bool>& stop);

  // The endpoint actually bound (with the port filled in when --listen used '*').
  const std::string& endpoint() const { return endpoint_; }

 private:
  using Time = Clock::time_point;

  // Security: keys, the ZAP handler and the plaintext check (before any bind).
  Status setup_security();
  // Under CURVE: the identity of the key `in` came with; nullopt in plaintext mode.
  // Refusals (a message that comes from the wrong kind of key) are answered here and
  // return false.
  bool authorize(const Inbound& in, const proto::Envelope& e,
                 const std::optional<std::string>& agent);
  bool curve() const { return authorized_ != nullptr; }
  // The authorized key of an agent (Z85), empty in plaintext mode.
  std::string agent_key(const std::string& agent) const;

  // Dispatch.
  void on_message(const Inbound& in, Time now);
  void on_reply(const Inbound& in, const proto::Envelope& e);
  void handle_agent_request(const std::string& agent, const Inbound& in, const proto::Envelope& e);
  void handle_client_request(const Inbound& in, const proto::Envelope& e);

  // Agents.
  void on_hello(const Inbound& in, const proto::Envelope& e, Time now);
  void on_heartbeat(const std::string& agent, const proto::Envelope& e);
  void send_heartbeats(Time now);
  void on_agent_dead(const std::string& agent);
  // An agent's last heartbeat said it stops: gone at once, calls to it fail with why.
  void on_agent_stopping(const std::string& agent, const std::string& why);
  void reconcile_jobs_of(const std::string& agent);
  void fail_orphaned_jobs(Time now);

  // Client requests.
  void on_agents(const Inbound& in, const proto::Envelope& e, Time now);
  void on_snapshots(const Inbound& in, const proto::Envelope& e);
  void on_replicate(const Inbound& in, const proto::Envelope& e);
  void on_jobs(const Inbound& in, const proto::Envelope& e);
  void on_job(const Inbound& in, const proto::Envelope& e);
  void on_watch(const Inbound& in, const proto::Envelope& e);
  void on_cancel(const Inbound& in, const proto::Envelope& e);
  void on_locks(const Inbound& in, const proto::Envelope& e);

  // Jobs (requests and notices from the sender agent).
  void on_job_update(const std::string& agent, const proto::Envelope& e);
  void on_job_end(const std::string& agent, const Inbound& in, const proto::Envelope& e);
  void forward_in_job(const std::string& agent, const Inbound& in, const proto::Envelope& e);
  void on_job_start_reply(const PendingCall& call, const proto::Envelope& e);
  void finish_job(Job& job, JobState state, const std::string& error, const std::string& code,
                  bool receives_settled);
  void release_locks_when_settled(Time now);
  void notify_watchers(const Job& job, proto::JobEvent event);
  void fail_pending(uint64_t id, const PendingCall& call, const Status& why);

  // Sending.
  void reply(const Inbound& in, uint64_t re, const std::string& body);
  void reply_error(const Inbound& in, uint64_t re, const Status& status);
  uint64_t next_request_id() { return ++request_seq_; }
  Job* find_job(uint64_t id);
  void persist(const Job& job);

  Options options_;
  zmq::context_t& ctx_;
  std::shared_ptr<const AuthorizedKeys> authorized_;  // set: CURVE is on
  std::optional<KeyPair> keys_;
  // Declared before router_: the ROUTER must close before its ZAP handler goes.
  std::unique_ptr<ZapHandler> zap_;
  std::unique_ptr<zmq::socket_t> router_;
  std::string endpoint_;
  std::unique_ptr<Store> store_;
  AgentRegistry registry_;
  LockTable locks_;
  PendingCalls pending_;
  std::map<uint64_t, Job> jobs_;  // active jobs and recent finished ones
  // Watchers of a job: (peer, watch request id).
  std::map<uint64_t, std::set<std::pair<std::string, uint64_t>>> watchers_;
  // Jobs that ended but whose receiver may still report an active receive; their
  // locks are released once it does not, or when the lease runs out.
  std::map<uint64_t, Time> settling_;
  uint64_t request_seq_ = 0;
  uint64_t next_job_id_ = 1;
  uint64_t malformed_ = 0;
  uint64_t malformed_reported_ = 0;  // malformed_ as of the last log line
  Time last_heartbeat_{};
  Time last_malformed_log_{};
  // Refused hellos are well-formed messages any peer can send in bulk: counted, and
  // logged at most every few seconds like malformed ones.
  uint64_t refused_hellos_ = 0;
  uint64_t unauthorized_ = 0;  // messages refused for the key they came with
  Time last_unauthorized_log_{};
  Time last_refused_hello_log_{};
  Time started_{};
};

}  // namespace zps::broker
