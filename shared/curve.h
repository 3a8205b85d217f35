// CURVE on a socket: the options that make it a server or a client, and the identity
// the ZAP handler gave a received message.
//
// Both helpers set options that libzmq copies when bind or connect runs, so call them
// on the fresh socket, before bind/connect (pipe::Options::configure_socket runs at the
// right moment: use curve_server_setup / curve_client_setup there).
//
// A CURVE server also needs a ZapHandler on its context (shared/zap.h): the server
// helper asks libzmq to refuse every client when none answers (ZMQ_ZAP_ENFORCE_DOMAIN),
// instead of libzmq's default of accepting everyone.
//
// Thread-safety: a socket belongs to one thread; call these on that thread.
#pragma once

#include <functional>
#include <string>

#include <zmq.hpp>

#include "shared/keys.h"
#include "shared/status.h"

namespace zps {

// Makes `socket` a CURVE server with `own` keys whose clients the ZAP handler judges
// under `zap_domain` ("control", or data_zap_domain(session)).
Status make_curve_server(zmq::socket_t& socket, const KeyPair& own, const std::string& zap_domain);

// Makes `socket` a CURVE client with `own` keys that only completes a handshake with
// the server holding the secret key of `server_public_z85`.
Status make_curve_client(zmq::socket_t& socket, const KeyPair& own,
                         const std::string& server_public_z85);

// The same as callables for pipe::Options::configure_socket (they copy the keys).
std::function<Status(zmq::socket_t&)> curve_server_setup(KeyPair own, std::string zap_domain);
std::function<Status(zmq::socket_t&)> curve_client_setup(KeyPair own,
                                                         std::string server_public_z85);

// Whether this libzmq honours ZMQ_ZAP_ENFORCE_DOMAIN (a draft option: Debian's build
// has it). Without it a CURVE server with no ZAP handler accepts any client.
bool zap_enforcement_supported();

// The User-Id the ZAP handler accepted the sender of `msg` with ("agent:node1"), or ""
// when the message has none (no CURVE, or no handler). On a ROUTER read it from the
// first frame after the routing id.
std::string user_id_of(const zmq::message_t& msg);

}  // namespace zps
