// ZFS name rules, checked before any zfs command runs or any name from the wire is used.
//
// The rules are ZFS's own (zfs_namecheck.c) made a little stricter where ZFS's
// leniency only helps an attacker or confuses an operator:
//   - a component is 1+ characters of [A-Za-z0-9_.:-];  ZFS also allows ' ', we do not
//     (an argv never needs quoting, logs never lie about where a name ends);
//   - no component is "." or "..", none starts with '-' (never mistaken for an option);
//   - the pool (first component) starts with a letter and is not a reserved vdev word
//     (mirror, raidz*, draid*, spare, log, ...) nor c[0-9]...;
//   - a dataset name is at most 255 bytes (ZFS_MAX_DATASET_NAME_LEN - 1), a full
//     snapshot name too;
//   - '%' (reserved for ZFS's own temporary clones), '@' and '#' inside components,
//     and any byte outside printable ASCII (NUL, control, non-UTF-8) are refused.
// Every error message names the offending name and says which rule it broke.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "shared/status.h"

namespace zps {

inline constexpr size_t kMaxNameLength = 255;

// "pool" or "pool/a/b".
Status validate_dataset_name(std::string_view name);
// The part after '@': "now", "auto-2024-01-01_00:00".
Status validate_snapshot_component(std::string_view snap);
// "pool/a/b@snap".
Status validate_snapshot_name(std::string_view full_name);

// "pool/a/b" -> "pool/a"; "pool" -> "".
std::string_view parent_dataset(std::string_view name);
// True when `name` is `ancestor` or lies below it ("a/b" under "a", not "ab").
bool is_same_or_below(std::string_view name, std::string_view ancestor);
// "pool/a/b@s" -> {"pool/a/b", "s"}; no '@' -> {name, ""}.
std::pair<std::string_view, std::string_view> split_snapshot(std::string_view full_name);

// Quotes a name for an error message: printable ASCII is shown as is, other bytes as
// \xNN, and the result is cut after 80 characters, so hostile input cannot mangle a log.
std::string quote_name(std::string_view name);

}  // namespace zps
