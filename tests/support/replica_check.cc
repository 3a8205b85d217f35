#include "tests/support/replica_check.h"

#include <fstream>
#include <sstream>

namespace zps::test {

std::string snapshot_difference(ZfsRig& rig, const std::string& source, const std::string& target) {
  auto a = rig.snapshots(source);
  if (!a.ok()) return "listing " + source + ": " + a.status().message();
  auto b = rig.snapshots(target);
  if (!b.ok()) return "listing " + target + ": " + b.status().message();
  if (a->empty()) return source + " has no snapshots";
  std::string diff;
  for (size_t i = 0; i < std::max(a->size(), b->size()); ++i) {
    const std::string want = i < a->size() ? (*a)[i].name + " " + std::to_string((*a)[i].guid) : "-";
    const std::string got = i < b->size() ? (*b)[i].name + " " + std::to_string((*b)[i].guid) : "-";
    if (want != got) diff += "snapshot " + std::to_string(i + 1) + ": source " + want + ", target " + got + "\n";
  }
  return diff;
}

std::string file_difference(ZfsRig& rig, const std::string& source, const std::string& target) {
  auto a = rig.mountpoint(source);
  if (!a.ok()) return a.status().message();
  auto b = rig.mountpoint(target);
  if (!b.ok()) return b.status().message();
  return tree_difference(*a, *b);
}

std::vector<std::string> partial_receives(ZfsRig& rig, const std::string& root) {
  std::vector<std::string> out;
  auto names = rig.zfs({"list", "-H", "-t", "all", "-r", "-o", "name", root});
  if (!names.ok()) return {"listing " + root + ": " + names.status().message()};
  std::istringstream in(*names);
  for (std::string line; std::getline(in, line);) {
    if (line.find('%') != std::string::npos) out.push_back(line);
  }
  return out;
}

std::vector<std::string> log_lines_with(const std::string& path, const std::string& needle) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) out.push_back(line);
  }
  return out;
}

}  // namespace zps::test
