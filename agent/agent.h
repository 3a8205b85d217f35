// zps-agent's main loop: the one DEALER connection to the broker.
//
// It registers (hello) and heartbeats, declares the broker lost after a number of
// silent intervals and then re-registers with back-off, answers the broker's requests
// (through a task pool, the receiver and the sender), and relays everything worker
// threads send over the internal bus (bus.h) to the broker and the replies back.
//
// Thread-safety: run() owns the sockets; everything else it drives is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <zmq.hpp>

#include "agent/options.h"
#include "agent/receiver.h"
#include "agent/sender.h"
#include "agent/tasks.h"
#include "shared/channel.h"
#include "shared/program_keys.h"
#include "shared/zap.h"
#include "shared/zfs.h"

namespace zps::agent {

class Agent {
 public:
  Agent(Options options, zmq::context_t& ctx);
  ~Agent();

  // Probes zfs, checks the receive roots, binds the internal bus.
  Status start();
  // Serves until `stop` is set, then aborts running receives and jobs and returns.
  void run(const std::atomic<bool>& stop);

 private:
  using Clock = std::chrono::steady_clock;

  // Loads the keys, or checks that plaintext is allowed; starts the ZAP handler of the
  // data sockets under CURVE.
  Status setup_security();
  void connect_broker();
  void send_hello(Clock::time_point now);
  void send_heartbeat();
  void on_broker_message(const Inbound& in, Clock::time_point now);
  void on_request(const proto::Envelope& e);
  void on_bus_message();
  void broker_lost(const std::string& why);
  void fail_bus_requests(const std::string& why);
  void reply(uint64_t re, const std::string& body);
  void refresh_pools();
  proto::Load load() const;

  Options options_;
  zmq::context_t& ctx_;
  Zfs zfs_;
  ClientSecurity security_;
  // Under CURVE: which key each receive session's data socket accepts, and the ZAP
  // handler that asks it (destroyed after the receiver's sockets: see ~Agent).
  ZapKeyRegistry zap_keys_;
  std::unique_ptr<ZapHandler> zap_;
  std::string bus_endpoint_;
  std::unique_ptr<zmq::socket_t> bus_;     // inproc ROUTER for worker threads
  std::unique_ptr<zmq::socket_t> broker_;  // DEALER to the broker
  std::unique_ptr<Receiver> receiver_;
  std::unique_ptr<Sender> sender_;
  std::unique_ptr<TaskPool> tasks_;
  std::map<uint64_t, std::string> bus_requests_;  // request id -> worker routing id
  proto::Capabilities caps_;
  mutable std::mutex pools_mu_;
  std::vector<proto::PoolSpace> pools_;
  std::mutex zfs_log_mu_;
  std::ofstream zfs_log_;

  const uint64_t instance_;  // random, per process (see proto::Hello::instance)
  bool registered_ = false;
  std::string last_refusal_;  // the broker's last reason for refusing our hello
  uint64_t hello_id_ = 0;
  std::chrono::milliseconds heartbeat_{1000};
  int liveness_ = 3;
  std::chrono::milliseconds hello_backoff_{500};
  Clock::time_point last_heard_{};
  Clock::time_point last_hello_{};
  Clock::time_point last_heartbeat_{};
  Clock::time_point last_pools_{};
};

}  // namespace zps::agent
