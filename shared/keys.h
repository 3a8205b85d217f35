// CURVE key pairs and the files that hold them.
//
// A key is 32 bytes, written as 40 Z85 characters (ZeroMQ's text form). `zpsctl keygen
// --out PREFIX` writes two files in the layout of CZMQ's certificates, so either tool can
// read the other's:
//   PREFIX.key  the secret certificate: public-key and secret-key; mode 0600
//   PREFIX.pub  the public certificate: public-key only; give it to the peers
//
// A secret key file that its group or others may read is refused (the fix is in the
// message: "chmod 600 FILE"), like ssh refuses a private key with loose modes: a key the
// whole host can read authenticates nobody. Files are read with a size limit and every
// key is checked (alphabet, length, canonical Z85; a secret certificate's public key
// must belong to its secret key), so a damaged file fails at startup, not at the first
// handshake.
//
// Thread-safety: pure functions and plain values.
#pragma once

#include <string>
#include <string_view>

#include "shared/status.h"

namespace zps {

inline constexpr size_t kCurveKeyBytes = 32;
inline constexpr size_t kZ85KeyChars = 40;

struct KeyPair {
  std::string public_z85;
  std::string secret_z85;
};

// kInvalidArgument unless `z85` is a canonical 40-character Z85 key. `what` names the
// key in the message ("broker key").
Status validate_z85_key(std::string_view z85, std::string_view what = "key");
// 40 Z85 characters -> 32 bytes, or 32 bytes -> 40 characters. Invalid input gives an
// error value, never a crash.
Result<std::string> z85_to_binary(std::string_view z85);
Result<std::string> binary_to_z85(std::string_view binary);

// A fresh key pair from libzmq (libsodium's random source). kInternal when this libzmq
// was built without CURVE.
Result<KeyPair> generate_keypair();

// "PREFIX.key" and "PREFIX.pub".
std::string secret_key_path(const std::string& prefix);
std::string public_key_path(const std::string& prefix);

// Writes PREFIX.key (mode 0600, whatever the umask) and PREFIX.pub (0644). Refuses
// (kRefused) when either file exists, or the prefix is empty or names a directory;
// never overwrites, and leaves no half pair behind when the second file fails.
Status write_keypair(const std::string& prefix, const KeyPair& keys);

// Reads a secret certificate (PREFIX.key). kRefused with "chmod 600 PATH" in the
// message when the file is not a regular file or its mode gives the group or others any
// access; kInvalidArgument when the keys are missing, malformed or do not belong
// together; kNotFound / kIoError when it cannot be read.
Result<KeyPair> load_secret_key(const std::string& path);

// A peer's public key: either a literal 40-character Z85 key or the path of a
// certificate (.pub, or a .key file, of which only the public key is used). Returns the
// Z85 form.
Result<std::string> load_public_key(const std::string& path_or_z85);

}  // namespace zps
