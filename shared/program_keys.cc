#include "shared/program_keys.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <set>

#include "shared/curve.h"
#include "shared/endpoints.h"

namespace zps {

Result<KeyPair> load_own_keys(const std::string& prefix_or_file) {
  if (prefix_or_file.empty()) return Status(Code::kInvalidArgument, "--key needs a PREFIX");
  const bool is_file = prefix_or_file.size() > 4 &&
                       prefix_or_file.compare(prefix_or_file.size() - 4, 4, ".key") == 0;
  const std::string path = is_file ? prefix_or_file : secret_key_path(prefix_or_file);
  auto keys = load_secret_key(path);
  if (!keys.ok()) return keys.status().with_context("--key");
  return keys;
}

Status ClientSecurity::apply(zmq::socket_t& socket) const {
  if (!own) return Status::Ok();
  return make_curve_client(socket, *own, broker_key).with_context("broker connection");
}

Result<ClientSecurity> load_client_security(const SecurityFlags& flags,
                                            const std::vector<std::string>& endpoints,
                                            std::string_view program) {
  ClientSecurity out;
  if (flags.key.empty() != flags.broker_key.empty()) {
    return Status(Code::kInvalidArgument,
                  std::string(program) + " needs both --key (its own key pair) and --broker-key "
                  "(the broker's public key) to use CURVE, or neither for plaintext");
  }
  if (flags.key.empty()) {
    ZPS_RETURN_IF_ERROR(check_plaintext_allowed(endpoints, flags.insecure, program,
                                                "--key PREFIX --broker-key BROKER.pub"));
    return out;
  }
  auto own = load_own_keys(flags.key);
  if (!own.ok()) return own.status();
  auto broker = load_public_key(flags.broker_key);
  if (!broker.ok()) return broker.status().with_context("--broker-key");
  out.own = std::move(*own);
  out.broker_key = std::move(*broker);
  return out;
}

ZapObserver log_zap_refusals(std::string what) {
  struct State {
    std::mutex mu;
    std::set<std::string> seen;  // refused keys already named in the log
    uint64_t refused = 0;
    std::chrono::steady_clock::time_point last_summary{};
  };
  constexpr size_t kMaxRemembered = 1000;
  auto state = std::make_shared<State>();
  return [state, what = std::move(what)](const ZapRequest& r,
                                         const std::optional<std::string>& user) {
    if (user) {
      spdlog::debug("accepted {} from {} as {}", what, r.address, *user);
      return;
    }
    std::lock_guard<std::mutex> lock(state->mu);
    ++state->refused;
    const std::string key = r.mechanism == "CURVE" ? r.client_key_z85 : r.mechanism;
    if (state->seen.size() < kMaxRemembered && state->seen.insert(r.domain + " " + key).second) {
      spdlog::warn("refused a {} from {} ({}): {} key {} is not authorized there", what,
                   r.address, r.domain, r.mechanism, key.empty() ? "(none)" : key);
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - state->last_summary > std::chrono::minutes(1)) {
      state->last_summary = now;
      spdlog::warn("refused {} {} handshake(s) so far (the last from {})", state->refused, what,
                   r.address);
    }
  };
}

}  // namespace zps
