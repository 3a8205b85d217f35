#include "shared/authorized_keys.h"

#include <sys/stat.h>

#include "shared/ids.h"
#include "shared/keys.h"
#include "shared/names.h"
#include "shared/secure_file.h"

namespace zps {
namespace {

constexpr size_t kMaxFileBytes = 1024 * 1024;
constexpr size_t kMaxLineBytes = 1024;

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

Result<Identity::Role> parse_role(std::string_view word) {
  if (word == "agent") return Identity::Role::kAgent;
  if (word == "operator") return Identity::Role::kOperator;
  return Status(Code::kInvalidArgument, "unknown role " + quote_name(word) +
                                            " (a line is 'agent ID KEY' or 'operator NAME KEY')");
}

Status validate_name(Identity::Role role, std::string_view name) {
  Status st = validate_agent_id(name);
  if (st.ok() || role == Identity::Role::kAgent) return st;
  return st.with_context("operator names follow the agent-id rules");
}

// One non-comment line -> an entry.
Result<AuthorizedKeys::Entry> parse_line(std::string_view line) {
  std::vector<std::string_view> f = split_fields(line);
  // A "# ..." after the key is a comment; '#' inside a key is Z85 and stays.
  size_t n = f.size();
  for (size_t i = 3; i < f.size(); ++i) {
    if (f[i].front() == '#') {
      n = i;
      break;
    }
  }
  if (n != 3) {
    return Status(Code::kInvalidArgument,
                  "expected 'agent ID KEY' or 'operator NAME KEY', got " +
                      std::to_string(n) + " field" + (n == 1 ? "" : "s"));
  }
  auto role = parse_role(f[0]);
  if (!role.ok()) return role.status();
  ZPS_RETURN_IF_ERROR(validate_name(*role, f[1]));
  ZPS_RETURN_IF_ERROR(validate_z85_key(f[2], "the key of " + std::string(f[0]) + " " +
                                                 std::string(f[1])));
  return AuthorizedKeys::Entry{Identity{*role, std::string(f[1])}, std::string(f[2])};
}

}  // namespace

std::string_view role_name(Identity::Role role) {
  return role == Identity::Role::kAgent ? "agent" : "operator";
}

std::string Identity::user_id() const { return std::string(role_name(role)) + ":" + name; }

Result<Identity> parse_user_id(std::string_view user_id) {
  const size_t colon = user_id.find(':');
  if (colon == std::string_view::npos) {
    return Status(Code::kInvalidArgument, "user id " + quote_name(user_id) + " is not ROLE:NAME");
  }
  auto role = parse_role(user_id.substr(0, colon));
  if (!role.ok()) return role.status();
  const std::string_view name = user_id.substr(colon + 1);
  ZPS_RETURN_IF_ERROR(validate_name(*role, name));
  return Identity{*role, std::string(name)};
}

Result<AuthorizedKeys> AuthorizedKeys::load(const std::string& path) {
  ProtectedFileRules rules;
  rules.what = "authorized-keys file";
  rules.max_bytes = kMaxFileBytes;
  rules.forbidden_mode = S_IWGRP | S_IWOTH;
  rules.fix = "chmod go-w";
  auto text = read_protected_file(path, rules);
  if (!text.ok()) return text.status();
  return parse(*text, "authorized-keys file " + quote_name(path));
}

Result<AuthorizedKeys> AuthorizedKeys::parse(std::string_view text, const std::string& label) {
  AuthorizedKeys keys;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    const std::string where = label + " line " + std::to_string(line_no);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > kMaxLineBytes) {
      return Status(Code::kInvalidArgument,
                    where + ": longer than " + std::to_string(kMaxLineBytes) + " characters");
    }
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    auto entry = parse_line(line);
    if (!entry.ok()) return entry.status().with_context(where);
    ZPS_RETURN_IF_ERROR(keys.add(std::move(entry).value(), where));
  }
  return keys;
}

Status AuthorizedKeys::add(Entry entry, const std::string& where) {
  auto raw = z85_to_binary(entry.key_z85);
  if (!raw.ok()) return raw.status().with_context(where);
  const std::string user = entry.identity.user_id();
  if (auto it = by_key_.find(*raw); it != by_key_.end()) {
    return Status(Code::kInvalidArgument,
                  where + ": this key is already listed for " +
                      entries_[it->second].identity.user_id() +
                      "; every agent and operator needs its own key (zpsctl keygen)");
  }
  if (by_user_.count(user) != 0) {
    return Status(Code::kInvalidArgument,
                  where + ": " + user + " is listed twice; give each one key (remove the old "
                                        "line when replacing a key)");
  }
  by_key_.emplace(std::move(raw).value(), entries_.size());
  by_user_.emplace(user, entries_.size());
  entries_.push_back(std::move(entry));
  return Status::Ok();
}

std::optional<Identity> AuthorizedKeys::find(std::string_view key) const {
  std::string raw;
  if (key.size() == kCurveKeyBytes) {
    raw = std::string(key);
  } else {
    auto decoded = z85_to_binary(key);
    if (!decoded.ok()) return std::nullopt;
    raw = std::move(decoded).value();
  }
  auto it = by_key_.find(raw);
  if (it == by_key_.end()) return std::nullopt;
  return entries_[it->second].identity;
}

std::optional<std::string> AuthorizedKeys::key_of(const Identity& identity) const {
  auto it = by_user_.find(identity.user_id());
  if (it == by_user_.end()) return std::nullopt;
  return entries_[it->second].key_z85;
}

}  // namespace zps
