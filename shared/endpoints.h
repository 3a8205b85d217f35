// When plaintext is allowed: only when every endpoint a program binds or connects to
// stays on this host, or when the operator said --insecure.
//
// Without keys, control messages and zfs streams would cross the network readable and
// forgeable by anyone on it. So a program configured without keys checks its endpoints
// at startup, before it creates a socket, and refuses to start when one of them is not
// loopback, with a message that says how to create keys.
//
// The check is textual and never resolves a name (no DNS at startup, no answer an
// attacker could influence): "localhost" counts as loopback, any other host name does
// not.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "shared/status.h"

namespace zps {

// True for inproc:// and ipc://, and for tcp:// whose host is 127.0.0.0/8, ::1 (also
// ::ffff:127.x.x.x) or localhost, with a port (a number or '*'). False for everything
// else: 0.0.0.0, *, ::, other addresses, host and interface names, other transports,
// and anything malformed. For "tcp://SOURCE;DEST" both sides must be loopback.
bool is_loopback_endpoint(std::string_view endpoint);

// Ok when `insecure` or when every endpoint is loopback; otherwise kRefused naming the
// first endpoint that is not, how to create keys, and --insecure. `program` is named in
// the message ("refusing to start zps-agent without encryption: ..."); `key_options`,
// when given, names the program's key flags ("--key FILE --broker-key KEY") so the
// message can say what to pass.
Status check_plaintext_allowed(const std::vector<std::string>& endpoints, bool insecure,
                               std::string_view program, std::string_view key_options = {});

}  // namespace zps
