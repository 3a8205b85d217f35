// CURVE keys for a test cluster: a key pair each for the broker, the agents and one
// operator (zpsctl), written with the library into DIR/keys, and the broker's
// authorized-keys file binding each agent key to its id.
//
// Extra, unlisted key pairs (an "intruder") can be made for tests of refusals.
//
// Thread-safety: one thread.
#pragma once

#include <string>
#include <vector>

#include "shared/keys.h"
#include "shared/status.h"

namespace zps::test {

class ClusterKeys {
 public:
  static constexpr const char* kOperator = "ops";

  // Keys for the broker, each of `agents` and the operator; the authorized-keys file
  // lists the agents (as agents) and kOperator (as operator).
  static Result<ClusterKeys> create(const std::string& dir, const std::vector<std::string>& agents);

  // Writes a key pair DIR/keys/NAME.{key,pub} that the authorized keys do not list.
  Result<KeyPair> make_unlisted(const std::string& name) const;

  // PREFIX of a key pair (PREFIX.key, PREFIX.pub).
  std::string prefix(const std::string& name) const { return dir_ + "/" + name; }
  std::string broker_public() const { return prefix("broker") + ".pub"; }
  const std::string& authorized_keys() const { return authorized_; }
  const KeyPair& broker_keys() const { return broker_; }

  // The flags each program gets.
  std::vector<std::string> broker_args() const;
  std::vector<std::string> agent_args(const std::string& id) const;
  std::vector<std::string> ctl_args(const std::string& name = kOperator) const;

 private:
  std::string dir_;  // DIR/keys
  std::string authorized_;
  KeyPair broker_;
};

}  // namespace zps::test
