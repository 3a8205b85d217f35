// Control messages on ZeroMQ sockets: the frames around an encoded body, socket limits,
// and receiving one whole message without trusting its shape.
//
// ROUTER sockets see [peer id, "ZPS1", body]; DEALER sockets see ["ZPS1", body]. A
// message with any other number of frames is read completely (so the next message
// starts clean) and reported as a protocol error; nothing a peer sends can make these
// functions throw.
//
// Thread-safety: a socket belongs to one thread; so do these calls on it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "shared/protocol.h"
#include "shared/status.h"

namespace zps {

// Applies the limits every control socket gets: ZMQ_MAXMSGSIZE, bounded queues, linger.
void configure_control_socket(zmq::socket_t& socket, int linger_ms = 0);

struct Inbound {
  std::string peer;  // ROUTER routing id; empty on DEALER sockets
  std::string peer_address;  // the remote IP address when the transport knows it
  // The identity the ZAP handler accepted the peer's key with ("agent:node1"), empty
  // without CURVE. Trust this, never what the message claims.
  std::string user_id;
  Result<proto::Envelope> message = Status(Code::kProtocol, "no message");
  std::string body;  // the body frame as received, when it decoded (for passing it on)
};

// Reads one message if one is waiting (nullopt when none is).
std::optional<Inbound> recv_control(zmq::socket_t& socket, bool router);

// Sends [peer?, "ZPS1", body] without blocking. Returns false when the peer is gone or
// its queue is full (the message is dropped).
bool send_control(zmq::socket_t& socket, std::string_view peer, const std::string& body);

// Printable form of a routing id for logs.
std::string peer_label(std::string_view peer);

}  // namespace zps
