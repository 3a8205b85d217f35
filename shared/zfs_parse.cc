#include "shared/zfs_parse.h"

#include <algorithm>
#include <map>
#include <set>

#include "shared/names.h"

namespace zps {
namespace {

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(sep, start);
    if (end == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

// Non-empty lines; zfs ends its output with a newline.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  for (std::string_view line : split(text, '\n')) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

Status unexpected(std::string_view what, std::string_view line) {
  return Status(Code::kProtocol,
                "unexpected output from zfs (" + std::string(what) + "): " + quote_name(line));
}

// Strict decimal: zfs without -p prints "7.99E" or "12.8K", and such a value must never
// be mistaken for a guid or a txg.
std::optional<uint64_t> to_u64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

Result<uint64_t> number_field(std::string_view field, std::string_view line) {
  std::optional<uint64_t> v = to_u64(field);
  if (!v) return unexpected("expected a plain number, as printed with -p", line);
  return *v;
}

// The short name when `full` is a snapshot of exactly `dataset`, else nullopt.
std::optional<std::string_view> snapshot_of(std::string_view dataset, std::string_view full) {
  if (full.size() <= dataset.size() + 1 || full.substr(0, dataset.size()) != dataset ||
      full[dataset.size()] != '@') {
    return std::nullopt;
  }
  return full.substr(dataset.size() + 1);
}

void sort_by_createtxg(std::vector<SnapshotVersion>& snaps) {
  std::stable_sort(snaps.begin(), snaps.end(),
                   [](const SnapshotVersion& a, const SnapshotVersion& b) {
                     return a.createtxg < b.createtxg;
                   });
}

// One usage form: "list [-rH][-d max] ..." with its continuation lines.
struct UsageForm {
  std::string command;  // "receive" for "receive|recv [-vnF] ..."
  std::string text;
};

std::vector<UsageForm> usage_forms(std::string_view usage) {
  std::vector<UsageForm> forms;
  for (std::string_view line : lines_of(usage)) {
    if (line.size() < 2 || line[0] != '\t') continue;
    if (line[1] == ' ' || line[1] == '\t') {  // a continuation of the previous form
      if (!forms.empty()) forms.back().text += std::string(line);
      continue;
    }
    std::string_view body = line.substr(1);
    std::string_view word = body.substr(0, body.find_first_of(" |\t"));
    forms.push_back({std::string(word), std::string(body)});
  }
  return forms;
}

// Option letters of a command, from every "[-abc" group in its forms ("[-rH]",
// "[-t type", "[-vnsFu]"); "[-[iI] snapshot]" contributes nothing, which is fine.
std::set<char> option_letters(const std::vector<UsageForm>& forms, std::string_view command) {
  std::set<char> letters;
  for (const UsageForm& form : forms) {
    if (form.command != command) continue;
    for (size_t at = form.text.find("[-"); at != std::string::npos;
         at = form.text.find("[-", at + 2)) {
      for (size_t i = at + 2; i < form.text.size() && is_letter(form.text[i]); ++i) {
        letters.insert(form.text[i]);
      }
    }
  }
  return letters;
}

}  // namespace

Result<std::vector<SnapshotVersion>> parse_snapshot_properties(std::string_view dataset,
                                                               std::string_view text) {
  struct Seen {
    std::optional<uint64_t> guid, createtxg;
  };
  std::vector<std::string> order;
  std::map<std::string, Seen, std::less<>> seen;
  for (std::string_view line : lines_of(text)) {
    std::vector<std::string_view> f = split(line, '\t');
    if (f.size() != 3) return unexpected("name, property, value", line);
    std::optional<std::string_view> snap = snapshot_of(dataset, f[0]);
    if (!snap) continue;  // the dataset itself, a child, or a child's snapshot
    if (f[1] != "guid" && f[1] != "createtxg") continue;
    Result<uint64_t> v = number_field(f[2], line);
    if (!v.ok()) return v.status();
    auto [it, inserted] = seen.try_emplace(std::string(*snap));
    if (inserted) order.emplace_back(*snap);
    (f[1] == "guid" ? it->second.guid : it->second.createtxg) = *v;
  }
  std::vector<SnapshotVersion> snaps;
  for (const std::string& name : order) {
    const Seen& s = seen.at(name);
    if (!s.guid || !s.createtxg) {
      return Status(Code::kProtocol, "zfs get printed only one of guid and createtxg for " +
                                         quote_name(std::string(dataset) + "@" + name));
    }
    snaps.push_back({name, *s.guid, *s.createtxg});
  }
  sort_by_createtxg(snaps);
  return snaps;
}

Result<std::vector<SnapshotVersion>> parse_snapshot_list(std::string_view dataset,
                                                         std::string_view text) {
  std::vector<SnapshotVersion> snaps;
  for (std::string_view line : lines_of(text)) {
    std::vector<std::string_view> f = split(line, '\t');
    if (f.size() != 3) return unexpected("name, guid, createtxg", line);
    std::optional<std::string_view> snap = snapshot_of(dataset, f[0]);
    if (!snap) continue;
    Result<uint64_t> guid = number_field(f[1], line);
    if (!guid.ok()) return guid.status();
    Result<uint64_t> txg = number_field(f[2], line);
    if (!txg.ok()) return txg.status();
    snaps.push_back({std::string(*snap), *guid, *txg});
  }
  sort_by_createtxg(snaps);
  return snaps;
}

Result<std::vector<DatasetInfo>> parse_dataset_list(std::string_view text) {
  std::vector<DatasetInfo> datasets;
  for (std::string_view line : lines_of(text)) {
    std::vector<std::string_view> f = split(line, '\t');
    if (f.size() != 3) return unexpected("name, type, origin", line);
    if (f[1] == "snapshot" || f[1] == "bookmark") continue;
    DatasetInfo info;
    info.name = std::string(f[0]);
    info.type = std::string(f[1]);
    if (f[2] != "-" && !f[2].empty()) info.origin = std::string(f[2]);
    datasets.push_back(std::move(info));
  }
  return datasets;
}

Result<uint64_t> parse_number(std::string_view text) {
  std::vector<std::string_view> lines = lines_of(text);
  if (lines.size() != 1) return unexpected("one number", text);
  return number_field(lines.front(), lines.front());
}

Result<std::vector<NamedValue>> parse_name_values(std::string_view text) {
  std::vector<NamedValue> values;
  for (std::string_view line : lines_of(text)) {
    std::vector<std::string_view> f = split(line, '\t');
    if (f.size() != 2) return unexpected("name, value", line);
    Result<uint64_t> v = number_field(f[1], line);
    if (!v.ok()) return v.status();
    values.push_back({std::string(f[0]), *v});
  }
  return values;
}

std::vector<std::string> usable_pools(std::string_view text) {
  std::vector<std::string> pools;
  for (std::string_view line : lines_of(text)) {
    std::vector<std::string_view> f = split(line, '\t');
    if (f.size() != 2 || !validate_dataset_name(f[0]).ok()) continue;
    if (f[1] == "ONLINE" || f[1] == "DEGRADED") pools.emplace_back(f[0]);
  }
  return pools;
}

ZfsCapabilities parse_capabilities(std::string_view usage, std::string_view holds_output) {
  const std::vector<UsageForm> forms = usage_forms(usage);
  auto has_command = [&](std::string_view name) {
    return std::any_of(forms.begin(), forms.end(),
                       [&](const UsageForm& f) { return f.command == name; });
  };
  const std::set<char> list = option_letters(forms, "list");
  const std::set<char> get = option_letters(forms, "get");
  const std::set<char> send = option_letters(forms, "send");
  const std::set<char> recv = option_letters(forms, "receive");

  ZfsCapabilities caps;
  caps.list_parsable = list.count('p') > 0;
  caps.get_type_filter = get.count('t') > 0;
  caps.resume_tokens = recv.count('s') > 0;
  caps.bookmarks = has_command("bookmark");
  caps.holds = has_command("holds") &&
               holds_output.find("internal error") == std::string_view::npos;
  caps.send_estimate = send.count('n') > 0 && send.count('P') > 0;
  caps.recv_no_mount = recv.count('u') > 0;
  return caps;
}

std::optional<std::string> missing_dataset(std::string_view stderr_text) {
  for (std::string_view line : lines_of(stderr_text)) {
    // "cannot open 'pool/x': dataset does not exist"
    constexpr std::string_view kOpen = "cannot open '";
    constexpr std::string_view kOpenTail = "': dataset does not exist";
    if (line.substr(0, kOpen.size()) == kOpen && line.size() > kOpen.size() + kOpenTail.size() &&
        line.substr(line.size() - kOpenTail.size()) == kOpenTail) {
      return std::string(
          line.substr(kOpen.size(), line.size() - kOpen.size() - kOpenTail.size()));
    }
    // zfs send: "WARNING: could not send pool/x@s: does not exist"
    constexpr std::string_view kSend = "could not send ";
    constexpr std::string_view kSendTail = ": does not exist";
    size_t at = line.find(kSend);
    if (at != std::string_view::npos && line.size() > at + kSend.size() + kSendTail.size() &&
        line.substr(line.size() - kSendTail.size()) == kSendTail) {
      size_t begin = at + kSend.size();
      return std::string(line.substr(begin, line.size() - kSendTail.size() - begin));
    }
  }
  return std::nullopt;
}

}  // namespace zps
