#include "agent/agent.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "shared/names.h"
#include "shared/signals.h"
#include "shared/version.h"

namespace zps::agent {
namespace {

constexpr auto kMaxHelloBackoff = std::chrono::milliseconds(8000);
constexpr auto kPoolsRefresh = std::chrono::seconds(30);
constexpr int kTaskThreads = 4;

std::string host_name() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) return "unknown";
  return host;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Agent::Agent(Options options, zmq::context_t& ctx)
    : options_(std::move(options)),
      ctx_(ctx),
      zfs_(options_.zfs, options_.zpool),
      instance_(std::random_device{}() * 0x100000000ULL + std::random_device{}()) {
  bus_endpoint_ = "inproc://zps-agent-bus-" + std::to_string(reinterpret_cast<uintptr_t>(this));
}

Agent::~Agent() {
  // Order matters: jobs and sessions use the bus, which the main loop no longer serves;
  // the data sockets close before their ZAP handler stops.
  sender_.reset();
  receiver_.reset();
  tasks_.reset();
  broker_.reset();
  zap_.reset();
}

Status Agent::setup_security() {
  const std::string port = std::to_string(options_.data_port_lo);
  auto tcp = [&](const std::string& host) {
    return "tcp://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  };
  auto security = load_client_security(
      options_.security, {options_.broker, tcp(options_.data_bind), tcp(options_.data_address)},
      "zps-agent");
  if (!security.ok()) return security.status();
  security_ = std::move(*security);
  if (!security_.curve()) return Status::Ok();
  ZapHandler::Options zo;
  zo.observer = log_zap_refusals("data connection");
  auto zap = ZapHandler::start(ctx_, zap_keys_.policy(), std::move(zo));
  if (!zap.ok()) return zap.status();
  zap_ = std::move(*zap);
  spdlog::info("CURVE on: public key {}, broker key {}", security_.own->public_z85,
               security_.broker_key);
  return Status::Ok();
}

Status Agent::start() {
  // First, before any socket exists: keys, or the permission to run in plaintext.
  ZPS_RETURN_IF_ERROR(setup_security());
  if (!options_.zfs_log.empty()) {
    zfs_log_.open(options_.zfs_log, std::ios::app);
    if (!zfs_log_) return Status(Code::kIoError, "cannot open --zfs-log " + options_.zfs_log);
  }
  zfs_.set_observer([this](const std::vector<std::string>& argv) {
    spdlog::debug("running {}", format_argv(argv));
    if (!zfs_log_.is_open()) return;
    std::lock_guard<std::mutex> lock(zfs_log_mu_);
    zfs_log_ << format_argv(argv) << '\n';
    zfs_log_.flush();
  });
  const ZfsCapabilities& c = zfs_.capabilities();
  caps_ = proto::Capabilities{c.list_parsable, c.resume_tokens, c.bookmarks,
                              c.holds,         c.send_estimate, c.recv_no_mount};

  bus_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::router);
  bus_->set(zmq::sockopt::linger, 0);
  bus_->bind(bus_endpoint_);

  ReceiverConfig rc;
  rc.roots = options_.recv_roots;
  rc.max_recvs = options_.max_recvs;
  rc.bind_host = options_.data_bind;
  rc.advertise_host = options_.data_address;
  rc.port_lo = options_.data_port_lo;
  rc.port_hi = options_.data_port_hi;
  rc.pipe.stall_timeout = std::chrono::milliseconds(options_.stall_timeout_ms);
  rc.bus_endpoint = bus_endpoint_;
  if (security_.curve()) {
    rc.keys = security_.own;
    rc.zap_keys = &zap_keys_;
  }
  receiver_ = std::make_unique<Receiver>(zfs_, ctx_, rc);
  ZPS_RETURN_IF_ERROR(receiver_->prepare_roots());

  SenderConfig sc;
  sc.agent_id = options_.id;
  sc.bus_endpoint = bus_endpoint_;
  sc.parallel = options_.parallel;
  sc.hop_attempts = options_.hop_attempts;
  sc.retry_backoff = std::chrono::milliseconds(options_.retry_backoff_ms);
  sc.pipe.stall_timeout = std::chrono::milliseconds(options_.stall_timeout_ms);
  sc.keys = security_.own;
  sender_ = std::make_unique<Sender>(zfs_, ctx_, sc);
  tasks_ = std::make_unique<TaskPool>(ctx_, bus_endpoint_, kTaskThreads);
  refresh_pools();
  last_pools_ = Clock::now();  // the loop's next refresh is a full interval away
  connect_broker();
  spdlog::info("agent {} starting: broker {}, data {} ports {}, roots [{}], max {} receives",
               options_.id, options_.broker, options_.data_address, options_.data_ports,
               join(options_.recv_roots), options_.max_recvs);
  return Status::Ok();
}

void Agent::connect_broker() {
  broker_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
  configure_control_socket(*broker_);
  // Queue nothing for a broker that is not connected: stale heartbeats and hellos
  // would arrive in a burst when it comes back.
  broker_->set(zmq::sockopt::immediate, 1);
  broker_->set(zmq::sockopt::reconnect_ivl, 200);
  broker_->set(zmq::sockopt::reconnect_ivl_max, 2000);
  // Checked at startup (setup_security): the keys are valid, so this cannot fail.
  if (Status s = security_.apply(*broker_); !s.ok()) spdlog::error("{}", s.message());
  broker_->connect(options_.broker);
}

void Agent::run(const std::atomic<bool>& stop) {
  const auto tick = std::chrono::milliseconds(50);
  while (!stop.load()) {
    zmq::pollitem_t items[] = {{broker_->handle(), 0, ZMQ_POLLIN, 0},
                               {bus_->handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, tick);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("poll failed: {}", e.what());
      continue;
    }
    auto now = Clock::now();
    if (items[0].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 1000; ++i) {
        auto in = recv_control(*broker_, false);
        if (!in) break;
        on_broker_message(*in, now);
      }
    }
    if (items[1].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 1000; ++i) on_bus_message();
    }
    now = Clock::now();
    if (registered_ && now - last_heard_ > heartbeat_ * liveness_) {
      broker_lost("no heartbeat from the broker for " +
                  std::to_string((heartbeat_ * liveness_).count()) + " ms");
    }
    if (!registered_ && now - last_hello_ >= hello_backoff_) send_hello(now);
    if (registered_ && now - last_heartbeat_ >= heartbeat_) {
      last_heartbeat_ = now;
      send_heartbeat();
    }
    if (now - last_pools_ >= kPoolsRefresh) {
      last_pools_ = now;
      tasks_->post([this](BusClient&) { refresh_pools(); });
    }
  }
  spdlog::info("stopping: aborting {} receive(s) and {} job(s)", receiver_->active().size(),
               sender_->running().size());
  const std::string why = " is stopping (" + stop_signal_name() + ")";
  receiver_->abort_all("the receiving agent" + why);
  sender_->stop_all("the sending agent " + options_.id + why);
  // Let the jobs report their end while the bus still runs.
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (!sender_->running().empty() && Clock::now() < until) {
    zmq::pollitem_t item{bus_->handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    for (int i = 0; i < 100; ++i) on_bus_message();
    while (auto in = recv_control(*broker_, false)) on_broker_message(*in, Clock::now());
  }
  // Last, once the jobs reported their end: tell the broker this agent leaves, so a job
  // that needs it fails with that reason at once instead of waiting out the heartbeats.
  // Best effort; the socket keeps it for a second on close.
  if (registered_) {
    proto::Heartbeat bye;
    bye.load = load();
    bye.stopping = "it was stopped (" + stop_signal_name() + ")";
    broker_->set(zmq::sockopt::linger, 1000);
    send_control(*broker_, "", proto::encode_notice(bye));
  }
}

void Agent::send_hello(Clock::time_point now) {
  last_hello_ = now;
  proto::Hello h;
  h.agent = options_.id;
  h.host = host_name();
  h.version = kVersion;
  h.data_address = options_.data_address;
  h.recv_roots = options_.recv_roots;
  {
    std::lock_guard<std::mutex> lock(pools_mu_);
    h.pools = pools_;
  }
  h.max_recvs = static_cast<uint32_t>(options_.max_recvs);
  h.caps = caps_;
  h.load = load();
  h.instance = instance_;
  hello_id_ = next_request_id();
  // Not connected yet (ZMQ_IMMEDIATE refused it): try again soon. Sent but unanswered:
  // back off, the broker may be starting or overloaded.
  if (send_control(*broker_, "", proto::encode_request(h, hello_id_))) {
    hello_backoff_ = std::min<std::chrono::milliseconds>(hello_backoff_ * 2, kMaxHelloBackoff);
  } else {
    hello_backoff_ = std::chrono::milliseconds(200);
  }
}

void Agent::send_heartbeat() {
  proto::Heartbeat hb;
  hb.load = load();
  {
    std::lock_guard<std::mutex> lock(pools_mu_);
    hb.pools = pools_;
  }
  send_control(*broker_, "", proto::encode_notice(hb));
}

proto::Load Agent::load() const {
  proto::Load l;
  l.recvs = receiver_->active();
  l.active_recvs = static_cast<uint32_t>(l.recvs.size());
  l.peak_recvs = receiver_->peak_concurrent();
  l.jobs = sender_->running();
  l.running_jobs = static_cast<uint32_t>(l.jobs.size());
  return l;
}

void Agent::broker_lost(const std::string& why) {
  spdlog::warn("lost the broker at {}: {}; reconnecting", options_.broker, why);
  registered_ = false;
  hello_backoff_ = std::chrono::milliseconds(500);
  fail_bus_requests("the agent lost its connection to the broker");
  connect_broker();
}

// Requests the broker will never answer (it went away, or restarted and forgot them)
// fail now with kUnavailable, so their workers retry instead of waiting out a timeout
// that may be a day long (a receive's verdict).
void Agent::fail_bus_requests(const std::string& why) {
  for (const auto& [id, worker] : bus_requests_) {
    const std::string err = proto::encode_error(id, Status(Code::kUnavailable, why));
    bus_->send(zmq::buffer(worker), zmq::send_flags::sndmore);
    bus_->send(zmq::buffer(proto::kSignature), zmq::send_flags::sndmore);
    bus_->send(zmq::buffer(err), zmq::send_flags::none);
  }
  bus_requests_.clear();
}

void Agent::on_broker_message(const Inbound& in, Clock::time_point now) {
  if (!in.message.ok()) {
    spdlog::warn("dropped a malformed message from the broker: {}", in.message.status().message());
    return;
  }
  last_heard_ = now;
  const proto::Envelope& e = *in.message;
  if (e.is_reply()) {
    if (e.re == hello_id_) {
      if (!e.ok) {
        // Asked again soon: a refusal because this id's previous process has not yet
        // fallen silent at the broker clears within a heartbeat or two. Logged once per
        // distinct reason, not on every try.
        if (e.err.msg != last_refusal_) spdlog::error("the broker refused registration: {}", e.err.msg);
        last_refusal_ = e.err.msg;
        hello_backoff_ = std::chrono::milliseconds(250);
        return;
      }
      if (!last_refusal_.empty()) last_refusal_.clear();
      auto r = e.as<proto::HelloReply>();
      if (r.ok() && r->heartbeat_ms > 0) heartbeat_ = std::chrono::milliseconds(r->heartbeat_ms);
      if (r.ok() && r->liveness > 0) liveness_ = static_cast<int>(r->liveness);
      if (!registered_) spdlog::info("registered with the broker at {}", options_.broker);
      registered_ = true;
      hello_backoff_ = std::chrono::milliseconds(500);
      return;
    }
    auto it = bus_requests_.find(e.re);
    if (it == bus_requests_.end()) return;
    const std::string& body = in.body;
    bus_->send(zmq::buffer(it->second), zmq::send_flags::sndmore);
    bus_->send(zmq::buffer(proto::kSignature), zmq::send_flags::sndmore);
    bus_->send(zmq::buffer(body), zmq::send_flags::none);
    bus_requests_.erase(it);
    return;
  }
  if (e.type == proto::Heartbeat::kType) return;
  if (e.type == proto::Reregister::kType) {
    if (registered_) spdlog::info("the broker asked this agent to register again");
    if (!bus_requests_.empty()) {
      spdlog::info("{} request(s) sent before the broker restarted will not be answered; "
                   "their jobs ask again", bus_requests_.size());
    }
    fail_bus_requests("the broker restarted and no longer knows this request");
    registered_ = false;
    hello_backoff_ = std::chrono::milliseconds(500);
    send_hello(now);
    return;
  }
  if (e.id != 0) on_request(e);
}

void Agent::reply(uint64_t re, const std::string& body) {
  (void)re;
  send_control(*broker_, "", body);
}

void Agent::on_request(const proto::Envelope& e) {
  const uint64_t id = e.id;
  auto fail = [&](const Status& s) { reply(id, proto::encode_error(id, s)); };
  if (e.type == proto::SnapshotsRequest::kType) {
    auto req = e.as<proto::SnapshotsRequest>();
    if (!req.ok()) return fail(req.status());
    tasks_->post([this, id, dataset = req->dataset](BusClient& bus) {
      auto snaps = zfs_.list_snapshots(dataset);
      if (!snaps.ok()) return bus.send(proto::encode_error(id, snaps.status()));
      proto::SnapshotsReply r;
      for (const auto& s : *snaps) r.snapshots.push_back({s.name, s.guid, s.createtxg});
      bus.send(proto::encode_reply(id, r));
    });
  } else if (e.type == proto::TargetStateRequest::kType) {
    auto req = e.as<proto::TargetStateRequest>();
    if (!req.ok()) return fail(req.status());
    tasks_->post([this, id, r = *req](BusClient& bus) {
      auto state = receiver_->target_state(r);
      bus.send(state.ok() ? proto::encode_reply(id, *state) : proto::encode_error(id, state.status()));
    });
  } else if (e.type == proto::PrepareRequest::kType) {
    auto req = e.as<proto::PrepareRequest>();
    if (!req.ok()) return fail(req.status());
    tasks_->post([this, id, r = *req](BusClient& bus) {
      auto prepared = receiver_->prepare(r);
      bus.send(prepared.ok() ? proto::encode_reply(id, *prepared)
                             : proto::encode_error(id, prepared.status()));
    });
  } else if (e.type == proto::RecvResultRequest::kType) {
    auto req = e.as<proto::RecvResultRequest>();
    if (!req.ok()) return fail(req.status());
    auto now = receiver_->result(req->job, req->session, id);
    if (now) reply(id, now->ok() ? proto::encode_reply(id, **now) : proto::encode_error(id, now->status()));
  } else if (e.type == proto::AbortRequest::kType) {
    auto req = e.as<proto::AbortRequest>();
    if (!req.ok()) return fail(req.status());
    receiver_->abort(req->job, req->session, req->reason);
    reply(id, proto::encode_reply(id, proto::Empty{}));
  } else if (e.type == proto::JobStart::kType) {
    auto req = e.as<proto::JobStart>();
    if (!req.ok()) return fail(req.status());
    if (!sender_->start(*req, id)) {
      fail(Status(Code::kRefused, "job " + std::to_string(req->job) + " already runs on " + options_.id));
    }
  } else if (e.type == proto::JobCancel::kType) {
    auto req = e.as<proto::JobCancel>();
    if (!req.ok()) return fail(req.status());
    if (!sender_->cancel(req->job)) {
      return fail(Status(Code::kNotFound, "job " + std::to_string(req->job) + " does not run on " + options_.id));
    }
    spdlog::info("job {}: cancelled by the operator", req->job);
    reply(id, proto::encode_reply(id, proto::Empty{}));
  } else {
    fail(Status(Code::kProtocol, "agent " + options_.id + " does not handle '" + e.type + "'"));
  }
}

void Agent::on_bus_message() {
  zmq::message_t frames[4];
  size_t n = 0;
  try {
    bool more = true;
    while (more) {
      zmq::message_t part;
      if (!bus_->recv(part, n == 0 ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) return;
      more = part.more();
      if (n < 4) frames[n] = std::move(part);
      ++n;
    }
  } catch (const zmq::error_t&) {
    return;
  }
  if (n != 4 || frames[1].size() != sizeof(uint64_t)) return;
  uint64_t id = 0;
  std::memcpy(&id, frames[1].data(), sizeof(id));
  if (id != 0) bus_requests_[id] = frames[0].to_string();
  if (!send_control(*broker_, "", frames[3].to_string()) && id != 0) {
    bus_requests_.erase(id);
    const std::string err = proto::encode_error(
        id, Status(Code::kUnavailable, "the broker at " + options_.broker + " is not connected"));
    bus_->send(frames[0], zmq::send_flags::sndmore);
    bus_->send(zmq::buffer(proto::kSignature), zmq::send_flags::sndmore);
    bus_->send(zmq::buffer(err), zmq::send_flags::none);
  }
}

void Agent::refresh_pools() {
  auto pools = zfs_.pools();
  if (!pools.ok()) return;
  std::vector<proto::PoolSpace> out;
  for (const auto& p : *pools) out.push_back({p.name, p.free_bytes});
  std::lock_guard<std::mutex> lock(pools_mu_);
  pools_ = std::move(out);
}

}  // namespace zps::agent
