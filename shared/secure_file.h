// Reading the small files the security layer trusts (key files, the authorized-keys
// file) without trusting them: regular files only, a size limit, and a mode check done
// on the opened file (fstat), so what is checked is what is read.
//
// Thread-safety: pure functions.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "shared/status.h"

namespace zps {

struct ProtectedFileRules {
  std::string_view what;   // "secret key file", for messages
  size_t max_bytes = 64 * 1024;
  // Mode bits that must be clear (e.g. 077: no group or other access), and the fix the
  // refusal suggests ("chmod 600").
  mode_t forbidden_mode = 0;
  std::string_view fix;
};

// The file's contents. kNotFound when it does not exist, kRefused when it is not a
// regular file or has a forbidden mode bit ("... run: chmod 600 PATH"), kInvalidArgument
// when it is larger than max_bytes, kIoError otherwise.
Result<std::string> read_protected_file(const std::string& path, const ProtectedFileRules& rules);

}  // namespace zps
