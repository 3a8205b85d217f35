#include "shared/names.h"

#include <array>
#include <cstdio>

namespace zps {
namespace {

constexpr size_t kQuoteLimit = 80;

bool is_name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.' || c == ':' || c == '-';
}

bool is_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool is_printable(unsigned char c) { return c >= 0x20 && c < 0x7f; }

std::string hex_byte(unsigned char c) {
  std::array<char, 5> buf{};
  std::snprintf(buf.data(), buf.size(), "\\x%02x", c);
  return buf.data();
}

// Names the offending character in words an operator can act on.
std::string describe_bad_char(unsigned char c) {
  switch (c) {
    case '%':
      return "'%', which ZFS reserves for its own temporary clones";
    case '@':
      return "'@', which separates a dataset from a snapshot name";
    case '#':
      return "'#', which ZFS reserves for bookmarks";
    case ' ':
      return "a space (allowed by ZFS, refused here so names never need quoting)";
    default:
      break;
  }
  if (c == 0) return "a NUL byte";
  if (!is_printable(c)) return "the byte " + hex_byte(c) + " (only printable ASCII is allowed)";
  return std::string("the character '") + static_cast<char>(c) + "'";
}

Status invalid(std::string_view kind, std::string_view name, const std::string& problem) {
  return Status(Code::kInvalidArgument, std::string(kind) + " name " + quote_name(name) + " " +
                                            problem);
}

// Checks one component ("a" of "pool/a/b", or "snap" of "pool@snap"). `kind` and
// `name` are only for the message, which always quotes the whole name.
Status validate_component(std::string_view kind, std::string_view name,
                          std::string_view component) {
  if (component.empty()) {
    return invalid(kind, name, "has an empty component (a leading, trailing or doubled '/')");
  }
  if (component == "." || component == "..") {
    return invalid(kind, name, "has a '" + std::string(component) +
                                   "' component, which ZFS refuses as a path reference");
  }
  if (component.front() == '-') {
    return invalid(kind, name, "has a component starting with '-' (" + quote_name(component) +
                                   "), which a command could take for an option");
  }
  for (unsigned char c : component) {
    if (!is_name_char(c)) {
      return invalid(kind, name, "contains " + describe_bad_char(c) +
                                     "; names may use only letters, digits and _ . : -");
    }
  }
  return Status::Ok();
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// ZFS refuses these pool names because zpool would read them as vdev specifications.
Status validate_pool_component(std::string_view kind, std::string_view name,
                               std::string_view pool) {
  if (!pool.empty() && !is_letter(static_cast<unsigned char>(pool.front()))) {
    return invalid(kind, name, "starts with " + quote_name(pool.substr(0, 1)) +
                                   ", but a pool name must start with a letter");
  }
  for (std::string_view word : {"mirror", "raidz", "draid", "spare"}) {
    if (starts_with(pool, word)) {
      std::string how = pool == word ? "is" : "begins with";
      return invalid(kind, name, "has pool name " + quote_name(pool) + ", which " + how + " '" +
                                     std::string(word) + "', a word ZFS reserves for vdevs");
    }
  }
  if (pool == "log") {
    return invalid(kind, name, "has pool name 'log', a word ZFS reserves for vdevs");
  }
  if (pool.size() >= 2 && pool[0] == 'c' && pool[1] >= '0' && pool[1] <= '9') {
    return invalid(kind, name, "has pool name " + quote_name(pool) +
                                   ", which ZFS refuses because it looks like a disk (c[0-9]...)");
  }
  return Status::Ok();
}

Status validate_length(std::string_view kind, std::string_view name) {
  if (name.empty()) return Status(Code::kInvalidArgument, std::string(kind) + " name is empty");
  if (name.size() > kMaxNameLength) {
    return invalid(kind, name, "is " + std::to_string(name.size()) +
                                   " bytes long; ZFS allows at most " +
                                   std::to_string(kMaxNameLength));
  }
  return Status::Ok();
}

Status validate_dataset_part(std::string_view kind, std::string_view name,
                             std::string_view dataset) {
  size_t start = 0;
  bool first = true;
  while (true) {
    size_t slash = dataset.find('/', start);
    std::string_view component =
        dataset.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                                : slash - start);
    ZPS_RETURN_IF_ERROR(validate_component(kind, name, component));
    if (first) ZPS_RETURN_IF_ERROR(validate_pool_component(kind, name, component));
    first = false;
    if (slash == std::string_view::npos) return Status::Ok();
    start = slash + 1;
  }
}

}  // namespace

Status validate_dataset_name(std::string_view name) {
  ZPS_RETURN_IF_ERROR(validate_length("dataset", name));
  if (name.find('@') != std::string_view::npos) {
    return invalid("dataset", name,
                   "contains '@': it names a snapshot, but a dataset is needed here");
  }
  return validate_dataset_part("dataset", name, name);
}

Status validate_snapshot_component(std::string_view snap) {
  ZPS_RETURN_IF_ERROR(validate_length("snapshot", snap));
  return validate_component("snapshot", snap, snap);
}

Status validate_snapshot_name(std::string_view full_name) {
  ZPS_RETURN_IF_ERROR(validate_length("snapshot", full_name));
  size_t at = full_name.find('@');
  if (at == std::string_view::npos) {
    return invalid("snapshot", full_name, "has no '@': a snapshot name is dataset@snapshot");
  }
  if (full_name.find('@', at + 1) != std::string_view::npos) {
    return invalid("snapshot", full_name, "has more than one '@'");
  }
  ZPS_RETURN_IF_ERROR(validate_dataset_part("snapshot", full_name, full_name.substr(0, at)));
  if (at + 1 == full_name.size()) return invalid("snapshot", full_name, "has nothing after '@'");
  return validate_component("snapshot", full_name, full_name.substr(at + 1));
}

std::string_view parent_dataset(std::string_view name) {
  size_t slash = name.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : name.substr(0, slash);
}

bool is_same_or_below(std::string_view name, std::string_view ancestor) {
  if (ancestor.empty() || !starts_with(name, ancestor)) return false;
  return name.size() == ancestor.size() || name[ancestor.size()] == '/';
}

std::pair<std::string_view, std::string_view> split_snapshot(std::string_view full_name) {
  size_t at = full_name.find('@');
  if (at == std::string_view::npos) return {full_name, std::string_view()};
  return {full_name.substr(0, at), full_name.substr(at + 1)};
}

std::string quote_name(std::string_view name) {
  std::string out = "'";
  size_t shown = 0;
  for (unsigned char c : name) {
    if (shown >= kQuoteLimit) {
      out += "...";
      break;
    }
    if (is_printable(c) && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      out += hex_byte(c);  // a quote or backslash inside could fake the name's end
    }
    ++shown;
  }
  out += "'";
  return out;
}

}  // namespace zps
