#include "shared/channel.h"

#include <array>
#include <vector>

#include "shared/curve.h"
#include "shared/wire.h"

namespace zps {
namespace {

// More frames than any valid message has; the rest of a longer message is discarded.
constexpr size_t kMaxFrames = 4;

}  // namespace

void configure_control_socket(zmq::socket_t& socket, int linger_ms) {
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(wire::kMaxMessageBytes));
  socket.set(zmq::sockopt::linger, linger_ms);
  socket.set(zmq::sockopt::sndhwm, 10000);
  socket.set(zmq::sockopt::rcvhwm, 10000);
  // A ROUTER otherwise drops messages for unknown or departed peers without a word, and
  // send_control could not report "the peer is gone" (the broker forgets watchers so).
  if (socket.get(zmq::sockopt::type) == ZMQ_ROUTER) {
    socket.set(zmq::sockopt::router_mandatory, true);
  }
}

std::optional<Inbound> recv_control(zmq::socket_t& socket, bool router) {
  std::array<zmq::message_t, kMaxFrames> frames;
  size_t n = 0;
  bool more = true;
  try {
    while (more) {
      zmq::message_t part;
      auto got = socket.recv(part, n == 0 ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
      if (!got) return std::nullopt;
      more = part.more();
      if (n < kMaxFrames) frames[n] = std::move(part);
      ++n;
    }
  } catch (const zmq::error_t& e) {
    if (n == 0) return std::nullopt;
    Inbound in;
    in.message = Status(Code::kProtocol, std::string("receive failed: ") + e.what());
    return in;
  }
  Inbound in;
  size_t first = 0;
  if (router) {
    in.peer = frames[0].to_string();
    first = 1;
  }
  try {
    if (n > first) in.peer_address = frames[first].gets("Peer-Address");
  } catch (const zmq::error_t&) {
    // inproc and some transports have no peer address
  }
  if (n > first) in.user_id = user_id_of(frames[first]);
  const size_t expected = first + 2;
  if (n != expected) {
    in.message = Status(Code::kProtocol, "expected " + std::to_string(expected) +
                                             " frames, got " + std::to_string(n));
    return in;
  }
  in.message = proto::decode(frames[first].data(), frames[first].size(), frames[first + 1].data(),
                             frames[first + 1].size());
  if (in.message.ok()) in.body = frames[first + 1].to_string();
  return in;
}

bool send_control(zmq::socket_t& socket, std::string_view peer, const std::string& body) {
  try {
    // Only the first frame may be refused (no peer, full queue, no connection with
    // ZMQ_IMMEDIATE); once it is accepted the rest of the message always is.
    if (!peer.empty()) {
      if (!socket.send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        return false;
      }
      socket.send(zmq::buffer(proto::kSignature), zmq::send_flags::sndmore);
    } else if (!socket.send(zmq::buffer(proto::kSignature),
                            zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      return false;
    }
    socket.send(zmq::buffer(body), zmq::send_flags::none);
    return true;
  } catch (const zmq::error_t&) {
    return false;
  }
}

std::string peer_label(std::string_view peer) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : peer) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace zps
