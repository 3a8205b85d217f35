#include "ctl/keygen.h"

#include "ctl/exit_codes.h"
#include "shared/ids.h"
#include "shared/keys.h"

namespace zps::ctl {
namespace {

// The name an authorized-keys line would most likely use: the prefix's last component
// when it is a valid agent id ("/etc/zpsend/node1" -> "node1"), else a placeholder.
std::string suggested_name(const std::string& prefix) {
  const size_t slash = prefix.rfind('/');
  std::string base = slash == std::string::npos ? prefix : prefix.substr(slash + 1);
  return validate_agent_id(base).ok() ? base : "NAME";
}

std::string keygen_text(const KeygenOptions& o, const KeyPair& keys) {
  const std::string name = suggested_name(o.out);
  return "public key " + keys.public_z85 + "\n" +
         "wrote " + secret_key_path(o.out) + " (secret key, mode 0600: keep it private)\n" +
         "wrote " + public_key_path(o.out) + " (public key)\n" +
         "in the broker's authorized-keys file, list it as one of:\n" +
         "  agent " + name + " " + keys.public_z85 + "\n" +
         "  operator " + name + " " + keys.public_z85 + "\n";
}

}  // namespace

int cmd_keygen(Context& ctx, const KeygenOptions& options) {
  auto keys = generate_keypair();
  if (!keys.ok()) return ctx.fail(Failure{kExitJobFailed, keys.status().message()});
  Status written = write_keypair(options.out, *keys);
  if (!written.ok()) {
    return ctx.fail(Failure{exit_code_for(written.code()),
                            "cannot write a key pair: " + written.message()});
  }
  if (ctx.json()) {
    nlohmann::ordered_json doc;
    doc["public"] = keys->public_z85;
    doc["secret_file"] = secret_key_path(options.out);
    doc["public_file"] = public_key_path(options.out);
    ctx.print_json(doc);
  } else {
    ctx.print(keygen_text(options, *keys));
  }
  return kExitOk;
}

}  // namespace zps::ctl
