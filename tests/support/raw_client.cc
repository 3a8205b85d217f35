#include "tests/support/raw_client.h"

#include "shared/channel.h"

namespace zps::test {

std::optional<proto::Envelope> raw_request(zmq::context_t& ctx, const std::string& endpoint,
                                           const std::string& body, uint64_t id,
                                           const ClientSecurity& security,
                                           std::chrono::milliseconds timeout) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  configure_control_socket(s);
  if (!security.apply(s).ok()) return std::nullopt;
  s.connect(endpoint);
  send_control(s, "", body);
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(100));
    while (auto in = recv_control(s, false)) {
      if (in->message.ok() && in->message->is_reply() && in->message->re == id) return *in->message;
    }
  }
  return std::nullopt;
}

}  // namespace zps::test
