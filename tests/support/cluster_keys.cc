#include "tests/support/cluster_keys.h"

#include <sys/stat.h>

#include <fstream>

namespace zps::test {

Result<ClusterKeys> ClusterKeys::create(const std::string& dir,
                                        const std::vector<std::string>& agents) {
  ClusterKeys k;
  k.dir_ = dir + "/keys";
  if (::mkdir(k.dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status(Code::kIoError, "cannot create " + k.dir_);
  }
  std::string text = "# written by the test cluster\n";
  auto make = [&](const std::string& name) -> Result<KeyPair> {
    auto pair = generate_keypair();
    if (!pair.ok()) return pair.status();
    ZPS_RETURN_IF_ERROR(write_keypair(k.prefix(name), *pair));
    return pair;
  };
  auto broker = make("broker");
  if (!broker.ok()) return broker.status();
  k.broker_ = *broker;
  for (const auto& id : agents) {
    auto pair = make(id);
    if (!pair.ok()) return pair.status();
    text += "agent " + id + " " + pair->public_z85 + "\n";
  }
  auto ops = make(kOperator);
  if (!ops.ok()) return ops.status();
  text += std::string("operator ") + kOperator + " " + ops->public_z85 + "\n";
  k.authorized_ = k.dir_ + "/authorized_keys";
  {
    std::ofstream out(k.authorized_, std::ios::trunc);
    out << text;
    if (!out) return Status(Code::kIoError, "cannot write " + k.authorized_);
  }
  // Not writable by group or others, or the broker refuses it.
  ::chmod(k.authorized_.c_str(), 0644);
  return k;
}

Result<KeyPair> ClusterKeys::make_unlisted(const std::string& name) const {
  auto pair = generate_keypair();
  if (!pair.ok()) return pair.status();
  ZPS_RETURN_IF_ERROR(write_keypair(prefix(name), *pair));
  return pair;
}

std::vector<std::string> ClusterKeys::broker_args() const {
  return {"--key", prefix("broker"), "--authorized-keys", authorized_};
}

std::vector<std::string> ClusterKeys::agent_args(const std::string& id) const {
  return {"--key", prefix(id), "--broker-key", broker_public()};
}

std::vector<std::string> ClusterKeys::ctl_args(const std::string& name) const {
  return {"--key", prefix(name), "--broker-key", broker_public()};
}

}  // namespace zps::test
