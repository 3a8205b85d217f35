#include "shared/status.h"

#include <array>
#include <cstdio>
#include <cstdlib>

namespace zps {
namespace {

struct CodeName {
  Code code;
  std::string_view name;
};

constexpr std::array<CodeName, 17> kCodeNames = {{
    {Code::kOk, "ok"},
    {Code::kInvalidArgument, "invalid_argument"},
    {Code::kNotFound, "not_found"},
    {Code::kLockHeld, "lock_held"},
    {Code::kDiverged, "diverged"},
    {Code::kTargetNewer, "target_newer"},
    {Code::kNoSnapshots, "no_snapshots"},
    {Code::kOutsideRoot, "outside_root"},
    {Code::kRefused, "refused"},
    {Code::kZfsFailed, "zfs_failed"},
    {Code::kIoError, "io_error"},
    {Code::kTimeout, "timeout"},
    {Code::kUnavailable, "unavailable"},
    {Code::kBusy, "busy"},
    {Code::kProtocol, "protocol"},
    {Code::kCancelled, "cancelled"},
    {Code::kInternal, "internal"},
}};

}  // namespace

std::string_view code_name(Code code) {
  for (const auto& c : kCodeNames) {
    if (c.code == code) return c.name;
  }
  return "internal";
}

Code code_from_name(std::string_view name) {
  for (const auto& c : kCodeNames) {
    if (c.name == name) return c.code;
  }
  return Code::kInternal;
}

bool is_refusal(Code code) {
  switch (code) {
    case Code::kInvalidArgument:
    case Code::kNotFound:
    case Code::kLockHeld:
    case Code::kDiverged:
    case Code::kTargetNewer:
    case Code::kNoSnapshots:
    case Code::kOutsideRoot:
    case Code::kRefused:
      return true;
    default:
      return false;
  }
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  std::string s(code_name(code_));
  s += ": ";
  s += message_;
  return s;
}

Status Status::with_context(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

void result_access_failure(const Status& status) {
  std::fprintf(stderr, "zpsend: value() of a failed Result: %s\n", status.to_string().c_str());
  std::abort();
}

}  // namespace zps
