// How a program turns its security flags into keys, or into the permission to run in
// plaintext: the one place zps-broker, zps-agent and zpsctl decide their mode.
//
//   --key PREFIX        own key pair (PREFIX.key, or the .key file itself); a secret key
//                       file others can read is refused (shared/keys.h)
//   --broker-key KEY    the broker's public key (a .pub file or 40 Z85 characters);
//                       clients only
//   --insecure          plaintext even on endpoints that are not loopback
//
// With keys, every socket the program owns is CURVE. Without, the program may run only
// when every endpoint it binds or connects to is loopback, or with --insecure; the check
// runs before any socket exists.
//
// Thread-safety: pure functions and plain values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "shared/keys.h"
#include "shared/status.h"
#include "shared/zap.h"

namespace zps {

struct SecurityFlags {
  std::string key;         // --key PREFIX
  std::string broker_key;  // --broker-key (clients)
  bool insecure = false;   // --insecure
};

// Own keys from --key: "PREFIX" reads PREFIX.key; a path ending in ".key" is read as is.
Result<KeyPair> load_own_keys(const std::string& prefix_or_file);

// A client of the broker (zps-agent, zpsctl): both --key and --broker-key, or neither.
struct ClientSecurity {
  std::optional<KeyPair> own;  // set: CURVE
  std::string broker_key;      // Z85, when own is set

  bool curve() const { return own.has_value(); }
  // Makes `socket` a CURVE client of the broker when keys are set; a no-op otherwise.
  // Call before connect.
  Status apply(zmq::socket_t& socket) const;
};

// Loads the client's keys, or checks that plaintext is allowed for `endpoints`.
// `program` names the program in messages.
Result<ClientSecurity> load_client_security(const SecurityFlags& flags,
                                            const std::vector<std::string>& endpoints,
                                            std::string_view program);

// A ZAP observer that logs refused handshakes: each refused key once (with the peer's
// address and `what`, e.g. "connection" or "data connection"), then a count at most
// once a minute, since a refused client retries at its reconnect interval.
ZapObserver log_zap_refusals(std::string what);

}  // namespace zps
