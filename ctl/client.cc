#include "ctl/client.h"

#include <algorithm>

#include "shared/channel.h"

namespace zps::ctl {
namespace {

using Clock = std::chrono::steady_clock;

// The longest single poll, so Ctrl-C is noticed quickly.
constexpr BrokerClient::Millis kPollSlice{100};

}  // namespace

BrokerClient::BrokerClient(zmq::context_t& ctx, std::string endpoint, const std::atomic<bool>* stop)
    : socket_(ctx, zmq::socket_type::dealer), endpoint_(std::move(endpoint)), stop_(stop) {}

Result<std::unique_ptr<BrokerClient>> BrokerClient::connect(zmq::context_t& ctx,
                                                            const std::string& endpoint,
                                                            const std::atomic<bool>* stop,
                                                            const ClientSecurity& security) {
  std::unique_ptr<BrokerClient> c(new BrokerClient(ctx, endpoint, stop));
  try {
    configure_control_socket(c->socket_, 0);
    ZPS_RETURN_IF_ERROR(security.apply(c->socket_));
    c->socket_.connect(endpoint);
  } catch (const zmq::error_t& e) {
    return Status(Code::kInvalidArgument,
                  "cannot use broker endpoint '" + endpoint + "' (" + e.what() +
                      "); give one like tcp://HOST:6830 with --broker or ZPS_BROKER");
  }
  return c;
}

void BrokerClient::send_body(const std::string& body) {
  // A message that cannot be queued is simply lost: the wait for its reply times out,
  // which is what the caller would see from a broker that is down.
  send_control(socket_, "", body);
}

std::optional<proto::Envelope> BrokerClient::next(Millis wait) {
  const auto deadline = Clock::now() + wait;
  while (!stopped()) {
    while (auto in = recv_control(socket_, false)) {
      if (in->message.ok()) return std::move(in->message).value();
    }
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left <= Millis::zero()) return std::nullopt;
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::min(left, kPollSlice));
    } catch (const zmq::error_t&) {
      // Ctrl-C sets the stop flag (install_stop_signals), checked between slices.
    }
  }
  return std::nullopt;
}

Result<proto::Envelope> BrokerClient::wait_reply(uint64_t id, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left <= Millis::zero()) break;
    auto e = next(left);
    if (stopped()) return Status(Code::kCancelled, "interrupted");
    if (e && e->is_reply() && e->re == id) return std::move(*e);
  }
  return Status(Code::kTimeout, "no reply from the broker at " + endpoint_);
}

}  // namespace zps::ctl
