// The broker's security: CURVE on the ROUTER with a ZAP handler that admits only the
// authorized keys, the plaintext rule, and who may send what.
//
// Under CURVE every message carries the identity of the key it came with (User-Id,
// set by the ZAP handler from the authorized-keys file). The rules:
//   - hello: an agent key, and only under the agent id that key is bound to;
//   - heartbeat, job_update, job_end, target_state, prepare, recv_result, abort and
//     replies: the agent key of the registered agent on that connection (the job checks
//     then make sure it is the job's sender, or the agent the request went to);
//   - every zpsctl request (agents, snapshots, replicate, jobs, job, watch, cancel,
//     locks): an operator key. Reading the fleet's state is an operator's business too:
//     `snapshots` makes the broker ask an agent, and an agent key must not command
//     other agents through the broker.
// A key that is not in the file never completes the handshake, so its connection gets
// nothing back at all.
#include <spdlog/spdlog.h>

#include "broker/broker.h"
#include "shared/curve.h"
#include "shared/endpoints.h"
#include "shared/program_keys.h"

namespace zps::broker {
namespace {

bool is_agent_message(const std::string& type) {
  return type == proto::Hello::kType || type == proto::Heartbeat::kType ||
         type == proto::JobUpdate::kType || type == proto::JobEnd::kType ||
         type == proto::TargetStateRequest::kType || type == proto::PrepareRequest::kType ||
         type == proto::RecvResultRequest::kType || type == proto::AbortRequest::kType;
}

}  // namespace

Status Broker::setup_security() {
  if (options_.key.empty() != options_.authorized_keys.empty()) {
    return Status(Code::kInvalidArgument,
                  "--key and --authorized-keys go together: the broker's key pair turns CURVE "
                  "on, and the authorized-keys file says whom to let in");
  }
  if (options_.key.empty()) {
    return check_plaintext_allowed({options_.listen}, options_.insecure, "zps-broker",
                                   "--key PREFIX --authorized-keys FILE");
  }
  auto keys = load_own_keys(options_.key);
  if (!keys.ok()) return keys.status();
  auto authorized = AuthorizedKeys::load(options_.authorized_keys);
  if (!authorized.ok()) return authorized.status().with_context("--authorized-keys");
  keys_ = std::move(*keys);
  authorized_ = std::make_shared<const AuthorizedKeys>(std::move(*authorized));
  if (!zap_enforcement_supported()) {
    spdlog::warn("this libzmq cannot enforce ZAP domains; the ZAP handler is the only guard");
  }
  ZapHandler::Options zo;
  zo.observer = log_zap_refusals("connection");
  auto zap = ZapHandler::start(ctx_, authorized_keys_policy(authorized_, kControlZapDomain),
                               std::move(zo));
  if (!zap.ok()) return zap.status();
  zap_ = std::move(*zap);
  spdlog::info("CURVE on: public key {}, {} authorized key(s) from {}", keys_->public_z85,
               authorized_->size(), options_.authorized_keys);
  return Status::Ok();
}

std::string Broker::agent_key(const std::string& agent) const {
  if (!authorized_) return {};
  return authorized_->key_of(Identity{Identity::Role::kAgent, agent}).value_or("");
}

bool Broker::authorize(const Inbound& in, const proto::Envelope& e,
                       const std::optional<std::string>& agent) {
  if (!curve()) return true;
  auto who = parse_user_id(in.user_id);
  std::string why;
  if (!who.ok()) {
    why = "the connection has no authorized identity";
  } else if (e.is_reply() || is_agent_message(e.type)) {
    if (who->role != Identity::Role::kAgent) {
      why = "'" + e.type + "' needs an agent key; this connection's key belongs to " +
            in.user_id;
    } else if (e.type == proto::Hello::kType) {
      auto hello = e.as<proto::Hello>();
      if (hello.ok() && hello->agent != who->name) {
        why = "the key of agent " + who->name + " cannot register as agent " + hello->agent;
      }
    } else if (agent && *agent != who->name) {
      why = "the key of agent " + who->name + " cannot speak for agent " + *agent;
    }
  } else if (who->role != Identity::Role::kOperator) {
    why = "'" + e.type + "' needs an operator key (only operators may start, cancel or list "
          "jobs); this connection's key belongs to " + in.user_id;
  }
  if (why.empty()) return true;
  ++unauthorized_;
  const Time now = Clock::now();
  if (now - last_unauthorized_log_ > std::chrono::seconds(5)) {
    last_unauthorized_log_ = now;
    spdlog::warn("refused a message from {}: {} ({} refused so far)", in.peer_address, why,
                 unauthorized_);
  }
  if (!e.is_reply()) reply_error(in, e.id, Status(Code::kRefused, why));
  return false;
}

}  // namespace zps::broker
