#include "tests/support/fake_broker.h"

#include <stdexcept>

#include "shared/channel.h"
#include "shared/curve.h"

namespace zps::test {

using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

FakeBroker::FakeBroker(zmq::context_t& ctx, std::optional<Curve> curve)
    : router_(ctx, zmq::socket_type::router) {
  configure_control_socket(router_);
  if (curve) {
    ZapPolicy policy = [curve](const ZapRequest& r) -> std::optional<std::string> {
      if (r.mechanism == "CURVE" && r.client_key_z85 == curve->agent_key) {
        return "agent:" + curve->agent_id;
      }
      return std::nullopt;
    };
    auto zap = ZapHandler::start(ctx, std::move(policy));
    if (!zap.ok()) throw std::runtime_error(zap.status().message());
    zap_ = std::move(*zap);
    if (Status s = make_curve_server(router_, curve->own, kControlZapDomain); !s.ok()) {
      throw std::runtime_error(s.message());
    }
  }
  router_.bind("tcp://127.0.0.1:*");
  endpoint_ = router_.get(zmq::sockopt::last_endpoint);
}

FakeBroker::~FakeBroker() {
  router_.close();
  zap_.reset();
}

bool FakeBroker::accept_agent(std::chrono::milliseconds timeout) {
  const auto until = SteadyClock::now() + timeout;
  while (SteadyClock::now() < until && agent_.empty()) pump(100ms, 0);
  return !agent_.empty();
}

std::optional<proto::Envelope> FakeBroker::call_raw(const std::string& body, uint64_t id,
                                                    std::chrono::milliseconds timeout) {
  if (!send_control(router_, agent_, body)) return std::nullopt;
  const auto until = SteadyClock::now() + timeout;
  while (SteadyClock::now() < until) {
    if (auto reply = pump(100ms, id)) return reply;
  }
  return std::nullopt;
}

std::optional<proto::Envelope> FakeBroker::pump(std::chrono::milliseconds wait, uint64_t want) {
  zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, wait);
  while (auto in = recv_control(router_, true)) {
    if (!in->message.ok()) continue;
    const proto::Envelope& e = *in->message;
    if (e.type == proto::Hello::kType) {
      agent_ = in->peer;
      proto::HelloReply hr{"fake", 1000, 60};
      send_control(router_, in->peer, proto::encode_reply(e.id, hr));
    } else if (e.is_reply() && want != 0 && e.re == want) {
      return e;
    }
  }
  return std::nullopt;
}

}  // namespace zps::test
