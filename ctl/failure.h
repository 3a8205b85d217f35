// Why a zpsctl command could not do what was asked: the one line it prints on stderr and
// the exit status that goes with it. Outcome<T> is a T or a Failure, so commands pass
// failures up as values and print them in one place.
//
// Thread-safety: plain values.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "shared/status.h"

namespace zps::ctl {

struct Failure {
  int exit_code = 1;
  std::string message;  // without the "zpsctl: " prefix
};

// No reply within the wait: names the endpoint and what to check (exit 3).
Failure unreachable(const std::string& endpoint, double seconds);
// An error the broker replied with, after `context` ("cannot replicate a:b"); the
// broker's message is kept verbatim. Exit 4 for refusals, else 1.
Failure broker_error(const std::string& context, const Status& status);
// A name refused before anything was sent (exit 4).
Failure invalid_name(const std::string& context, const Status& status);
// Ctrl-C (exit 1); `what` says what is left behind, if anything.
Failure interrupted(const std::string& what);

template <typename T>
class Outcome {
 public:
  Outcome(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Outcome(Failure failure) : v_(std::move(failure)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  T& value() { return std::get<T>(v_); }
  const T& operator*() const { return value(); }
  const T* operator->() const { return &value(); }
  const Failure& failure() const { return std::get<Failure>(v_); }

 private:
  std::variant<T, Failure> v_;
};

}  // namespace zps::ctl
