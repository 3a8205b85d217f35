// Checks that a received copy is exactly its source, for the fault tests: the same
// snapshots (name and guid, in creation order), the same files, and nothing half
// received left behind.
//
// Each returns "" when all is well, else a description of every difference, so a test
// can EXPECT_EQ(..., "") and a chaos run can count. Thread-safety: one thread (the rig).
#pragma once

#include <string>
#include <vector>

#include "tests/support/zfs_rig.h"

namespace zps::test {

// Snapshots (name, guid, order) of `source` and `target` differ; also "" only when the
// source has at least one snapshot.
std::string snapshot_difference(ZfsRig& rig, const std::string& source, const std::string& target);

// The mounted files of the two datasets differ (tree_difference of their mountpoints).
std::string file_difference(ZfsRig& rig, const std::string& source, const std::string& target);

// Datasets under `root` that a partial receive left behind: zfs's temporary "%recv"
// clones and anything else with a '%' in its name.
std::vector<std::string> partial_receives(ZfsRig& rig, const std::string& root);

// The lines of `path` (a log) that contain `needle`.
std::vector<std::string> log_lines_with(const std::string& path, const std::string& needle);

}  // namespace zps::test
