// Who may talk to the broker: the authorized-keys file, and the identity a CURVE key
// stands for.
//
// The file lists one key per line:
//
//   # comments and blank lines are ignored
//   agent    node1  rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7
//   operator alice  JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6
//
// An agent line binds a key to an agent id: a connection made with that key may only
// register as that agent. An operator line names a person or program allowed to start,
// cancel and list jobs. Names follow the agent-id rules (shared/ids.h); a key appears
// at most once in the file, and a name at most once per role (so the broker can name the
// one key of an agent to its peers). A trailing "# ..." after the key is a comment.
// Every error names the file and the line.
//
// The ZAP handler hands an identity to the program as the message property User-Id, in
// the form "agent:node1" or "operator:alice" (Identity::user_id / parse_user_id).
//
// Thread-safety: an AuthorizedKeys is immutable after load(); share it between threads
// (e.g. as std::shared_ptr<const AuthorizedKeys>) freely. To reload, load a new one and
// swap the pointer.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/status.h"

namespace zps {

struct Identity {
  enum class Role { kAgent, kOperator };
  Role role = Role::kAgent;
  std::string name;

  // "agent:node1", "operator:alice": the ZAP User-Id.
  std::string user_id() const;
  bool operator==(const Identity&) const = default;
};

std::string_view role_name(Identity::Role role);  // "agent", "operator"

// "agent:node1" -> {kAgent, "node1"}; kInvalidArgument for anything else (unknown role,
// invalid name, empty).
Result<Identity> parse_user_id(std::string_view user_id);

class AuthorizedKeys {
 public:
  struct Entry {
    Identity identity;
    std::string key_z85;
  };

  AuthorizedKeys() = default;  // authorizes nobody

  // Reads and checks the file. Refuses (kRefused) a file that its group or others may
  // write (anyone who can edit it can let themselves in); kInvalidArgument with
  // "FILE line N: ..." for a malformed line; kNotFound when it does not exist.
  static Result<AuthorizedKeys> load(const std::string& path);
  // The same from text; `label` names the source in messages.
  static Result<AuthorizedKeys> parse(std::string_view text, const std::string& label);

  // The identity of a key, given as 32 raw bytes or 40 Z85 characters.
  std::optional<Identity> find(std::string_view key) const;
  // The key (Z85) listed for an identity, e.g. the sender agent's key that a receiver's
  // data socket must expect.
  std::optional<std::string> key_of(const Identity& identity) const;

  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

 private:
  Status add(Entry entry, const std::string& where);

  std::vector<Entry> entries_;
  std::map<std::string, size_t> by_key_;   // raw 32-byte key -> index into entries_
  std::map<std::string, size_t> by_user_;  // user_id -> index
};

}  // namespace zps
