// Where the tests find the programs they start and the files they read.
#pragma once

#include <string>

namespace zps::test {

// Absolute path of a built program ("zps-broker") in build/bin.
std::string bin_path(const std::string& program);
// Absolute path of a file in the source tree ("tests/unit/data/x").
std::string source_path(const std::string& relative);

}  // namespace zps::test
