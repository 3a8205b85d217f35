// Parsers for zfs(8) output, kept apart from the adapter so unit tests can feed them
// recorded output. All take the tab-separated form of `zfs get -H -p` / `zfs list -H`.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/plan.h"
#include "shared/status.h"
#include "shared/zfs.h"

namespace zps {

// Output of `zfs get -Hp -d 1 -o name,property,value guid,createtxg DATASET` (zfs-fuse;
// the dataset itself and child datasets appear too and are skipped): the snapshots
// of DATASET ordered by createtxg.
Result<std::vector<SnapshotVersion>> parse_snapshot_properties(std::string_view dataset,
                                                               std::string_view text);

// Output of `zfs list -Hp -t snapshot -d 1 -o name,guid,createtxg DATASET` (OpenZFS).
Result<std::vector<SnapshotVersion>> parse_snapshot_list(std::string_view dataset,
                                                         std::string_view text);

// Output of `zfs list -H -r -o name,type,origin DATASET`, parents before children.
Result<std::vector<DatasetInfo>> parse_dataset_list(std::string_view text);

// Output of `zfs get -Hp -o value PROP NAME` for a single number.
Result<uint64_t> parse_number(std::string_view text);

// One "name<TAB>number" line.
struct NamedValue {
  std::string name;
  uint64_t value = 0;
};

// Output of `zfs get -Hp -o name,value PROP NAME...` (zfs-fuse, e.g. `-r guid` or
// `available`) or `zfs list -Hp -o name,PROP` (OpenZFS), in listing order.
Result<std::vector<NamedValue>> parse_name_values(std::string_view text);

// Output of `zpool list -H -o name,health`: the pools whose root dataset can be read
// (ONLINE or DEGRADED), in listing order. "no pools available" yields none.
std::vector<std::string> usable_pools(std::string_view text);

// Capabilities from the usage text `zfs` prints when run without arguments, and from
// what `zfs holds` without arguments says (zfs-fuse lists `holds` in its usage but
// fails with "internal error: /usr/lib/zfs/pyzfs.py not found").
ZfsCapabilities parse_capabilities(std::string_view usage, std::string_view holds_output);

// The dataset named by zfs's "cannot open 'X': dataset does not exist" (or send's
// "could not send X: does not exist"), or nullopt when the text says something else.
std::optional<std::string> missing_dataset(std::string_view stderr_text);

}  // namespace zps
