#include "ctl/context.h"

#include <cmath>

#include "ctl/exit_codes.h"

namespace zps::ctl {

Context::Context(GlobalOptions options, Io io) : options_(std::move(options)), io_(io) {}

// The client's socket must close before its ZeroMQ context.
Context::~Context() {
  client_.reset();
  zmq_.reset();
}

std::chrono::milliseconds Context::timeout() const {
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(options_.timeout_s * 1000)));
}

Outcome<BrokerClient*> Context::client() {
  if (client_) return client_.get();
  // Keys, or the permission to talk in plaintext, before any socket exists.
  auto security = load_client_security(options_.security, {options_.broker}, "zpsctl");
  if (!security.ok()) {
    return Failure{kExitUsage, security.status().message()};
  }
  if (!zmq_) zmq_ = std::make_unique<zmq::context_t>(1);
  auto c = BrokerClient::connect(*zmq_, options_.broker, io_.stop, *security);
  if (!c.ok()) return Failure{kExitUsage, c.status().message()};
  client_ = std::move(c).value();
  return client_.get();
}

Failure Context::no_reply(const Status& why) const {
  if (why.code() == Code::kCancelled) return interrupted("");
  return unreachable(options_.broker, options_.timeout_s);
}

Failure Context::unreadable(const Status& why) const {
  return Failure{kExitJobFailed, "the broker at " + options_.broker +
                                     " sent a reply zpsctl cannot read (" + why.message() +
                                     "); check that zpsctl and zps-broker are the same version"};
}

int Context::fail(const Failure& failure) {
  io_.err << "zpsctl: " << failure.message << std::endl;
  return failure.exit_code;
}

void Context::print_json(const nlohmann::ordered_json& doc) {
  // Messages can carry zfs stderr, which is not always UTF-8: replace, never throw.
  io_.out << doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << std::endl;
}

}  // namespace zps::ctl
