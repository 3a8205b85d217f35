// zpsend's security layer, in one include: CURVE everywhere, authorization by key.
//
//   keys.h             key pairs and key files (zpsctl keygen; secret files must be 0600)
//   authorized_keys.h  the broker's list of agent and operator keys; Identity, User-Id
//   zap.h              the ZAP handler, the broker's policy, the receivers' per-session
//                      key registry
//   curve.h            making a socket a CURVE server or client; reading User-Id
//   endpoints.h        when plaintext is allowed (loopback only, or --insecure)
//
// The model:
//   - The broker's ROUTER is a CURVE server (ZAP domain "control") with the broker's key
//     pair; its ZAP policy accepts exactly the keys in the authorized-keys file and tags
//     each connection with the key's identity (User-Id "agent:node1" or
//     "operator:alice"). The broker trusts that identity, never what a message claims:
//     an agent may register only under its own id, and only operators may start, cancel
//     or list jobs.
//   - Agents and zpsctl are CURVE clients with their own key pairs and the broker's
//     public key.
//   - Each receive session's PULL data socket is a CURVE server (ZAP domain
//     "data:<session>") with the receiving agent's key pair; it accepts only the key of
//     the job's sending agent (registered in a ZapKeyRegistry for the session), and the
//     pipe still checks the hop's token.
//   - Without keys, a program runs in plaintext only when every endpoint is loopback or
//     the operator passed --insecure (check_plaintext_allowed), and otherwise refuses
//     to start, saying how to create keys.
//
// Order on a context: start the ZapHandler, then configure each socket (before bind or
// connect), then bind/connect; close the sockets, then destroy the handler, then the
// context.
#pragma once

#include "shared/authorized_keys.h"  // IWYU pragma: export
#include "shared/curve.h"            // IWYU pragma: export
#include "shared/endpoints.h"        // IWYU pragma: export
#include "shared/keys.h"             // IWYU pragma: export
#include "shared/zap.h"              // IWYU pragma: export
