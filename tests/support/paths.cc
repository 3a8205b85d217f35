#include "tests/support/paths.h"

namespace zps::test {

std::string bin_path(const std::string& program) { return std::string(ZPS_BIN_DIR) + "/" + program; }

std::string source_path(const std::string& relative) {
  return std::string(ZPS_SOURCE_DIR) + "/" + relative;
}

}  // namespace zps::test
