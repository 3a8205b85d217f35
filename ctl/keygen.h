// zpsctl keygen: writes a CURVE key pair for an agent, an operator or the broker.
//
// Purely local: it never opens the broker connection, so it works before any broker
// exists (which is when keys are made).
//
// Thread-safety: one thread.
#pragma once

#include "ctl/context.h"
#include "ctl/options.h"

namespace zps::ctl {

// Writes PREFIX.key (secret, 0600) and PREFIX.pub, never overwriting either, and prints
// the public key (with --json: {public, secret_file, public_file}). Exit 0, or 4 when a
// file exists or the prefix is unusable, 1 when writing failed.
int cmd_keygen(Context& ctx, const KeygenOptions& options);

}  // namespace zps::ctl
