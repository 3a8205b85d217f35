// The command lines of the bench programs: "--name value" options, read in order.
#pragma once

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

namespace zps::bench {

class Args {
 public:
  // missing(name) is called when an option's value is missing; it should not return
  // (the program exits with status 2 if it does).
  Args(int argc, char** argv, std::function<void(const std::string&)> missing)
      : argc_(argc), argv_(argv), missing_(std::move(missing)) {}

  // The next option's name; nothing at the end of the command line.
  std::optional<std::string> next() {
    if (++i_ >= argc_) return std::nullopt;
    return std::string(argv_[i_]);
  }

  // The value of the option next() just returned.
  std::string value() {
    if (i_ + 1 >= argc_) {
      missing_(argv_[i_]);
      std::exit(2);
    }
    return argv_[++i_];
  }

 private:
  int argc_;
  char** argv_;
  std::function<void(const std::string&)> missing_;
  int i_ = 0;
};

}  // namespace zps::bench
