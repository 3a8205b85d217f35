// Status and Result: errors as values.
//
// Every layer returns a Status (or a Result<T>, which is a T or a Status) instead of
// throwing. A Status carries a Code that the programs map to exit statuses and wire
// error codes, and a message written for the operator: what happened, to what, and
// what they can do about it.
//
// Thread-safety: plain values; copy freely.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace zps {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // a bad name, flag or field: refused before anything ran
  kNotFound,         // a dataset, agent, job that does not exist
  kLockHeld,         // another job holds a conflicting lock
  kDiverged,         // target and source have no common snapshot
  kTargetNewer,      // target has snapshots after the last common one
  kNoSnapshots,      // the source has nothing to send
  kOutsideRoot,      // target would land outside every receive root
  kRefused,          // any other refusal by a peer (busy, stale fence, unauthorized)
  kZfsFailed,        // zfs(8) exited non-zero; the message carries its stderr
  kIoError,          // a local system call failed
  kTimeout,
  kUnavailable,      // a peer is not reachable or not alive
  kBusy,             // a receiver at its --max-recvs limit: wait for a slot, not a failure
  kProtocol,         // a malformed or unexpected message
  kCancelled,
  kInternal,
};

// The stable wire / JSON name of a code ("lock_held"), and back.
std::string_view code_name(Code code);
Code code_from_name(std::string_view name);

// True for the codes zpsctl reports as "refused" (exit status 4): the request was
// turned down before it changed anything.
bool is_refusal(Code code);

class Status {
 public:
  Status() = default;  // ok
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "lock_held: ..." for logs.
  std::string to_string() const;

  // Prefixes the message with context ("receiving backup/x@s3: " + message).
  Status with_context(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or an error. Accessing value() of an error is a programming mistake and aborts.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}     // NOLINT: implicit by design
  Result(Code code, std::string message) : v_(Status(code, std::move(message))) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  const T& value() const& { check(); return std::get<T>(v_); }
  T& value() & { check(); return std::get<T>(v_); }
  T&& value() && { check(); return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

 private:
  void check() const;
  std::variant<T, Status> v_;
};

[[noreturn]] void result_access_failure(const Status& status);

template <typename T>
void Result<T>::check() const {
  if (!ok()) result_access_failure(std::get<Status>(v_));
}

}  // namespace zps

// Returns early from the enclosing function when `expr` (a Status) is an error.
#define ZPS_RETURN_IF_ERROR(expr)            \
  do {                                       \
    ::zps::Status zps_status_ = (expr);      \
    if (!zps_status_.ok()) return zps_status_; \
  } while (0)
