#include "agent/bus.h"

#include <cstring>

#include "shared/channel.h"

namespace zps::agent {
namespace {

std::atomic<uint64_t> g_request_seq{0};

constexpr auto kPollSlice = std::chrono::milliseconds(100);

}  // namespace

uint64_t next_request_id() { return ++g_request_seq; }

BusClient::BusClient(zmq::context_t& ctx, const std::string& endpoint)
    : socket_(ctx, zmq::socket_type::dealer) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.connect(endpoint);
}

void BusClient::send(const std::string& body) {
  uint64_t zero = 0;
  try {
    socket_.send(zmq::buffer(&zero, sizeof(zero)), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(proto::kSignature), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(body), zmq::send_flags::none);
  } catch (const zmq::error_t&) {
    // The context is shutting down; nothing to deliver to.
  }
}

Result<proto::Envelope> BusClient::call_raw(const std::string& body, uint64_t id,
                                            std::chrono::milliseconds timeout,
                                            const std::atomic<bool>* cancel) {
  return call_raw(body, id, timeout, [cancel] { return cancel != nullptr && cancel->load(); });
}

Result<proto::Envelope> BusClient::call_raw(const std::string& body, uint64_t id,
                                            std::chrono::milliseconds timeout,
                                            const std::function<bool()>& stop) {
  try {
    socket_.send(zmq::buffer(&id, sizeof(id)), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(proto::kSignature), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(body), zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    return Status(Code::kUnavailable, std::string("agent is shutting down: ") + e.what());
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (stop()) return Status(Code::kCancelled, "cancelled");
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      return Status(Code::kTimeout, "no answer within " + std::to_string(timeout.count()) + " ms");
    }
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::min<std::chrono::milliseconds>(
                              kPollSlice, std::chrono::duration_cast<std::chrono::milliseconds>(left) +
                                              std::chrono::milliseconds(1)));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Status(Code::kUnavailable, std::string("agent is shutting down: ") + e.what());
    }
    if (!(item.revents & ZMQ_POLLIN)) continue;
    auto in = recv_control(socket_, false);
    if (!in || !in->message.ok()) continue;
    const proto::Envelope& e = *in->message;
    if (!e.is_reply() || e.re != id) continue;  // a late reply to an earlier, abandoned call
    if (!e.ok) return e.error_status();
    return *in->message;
  }
}

}  // namespace zps::agent
