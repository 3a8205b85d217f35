// Reading the logs and small files a test's processes write, and waiting for a line to
// appear in one (a safety-net timeout, never a timing assertion).
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <string>

namespace zps::test {

// The whole file, or "" when it cannot be read.
std::string read_text(const std::string& path);

// Waits until the file at `path` contains `text`; false when `timeout` passed first.
bool wait_for_text(const std::string& path, const std::string& text,
                   std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace zps::test
