#include "ctl/failure.h"

#include "ctl/exit_codes.h"
#include "ctl/format.h"

namespace zps::ctl {

Failure unreachable(const std::string& endpoint, double seconds) {
  return Failure{kExitUnreachable, "no answer from the broker at " + endpoint + " within " +
                                       format_seconds(seconds) +
                                       "; check that zps-broker runs there, or set --broker / "
                                       "ZPS_BROKER"};
}

Failure broker_error(const std::string& context, const Status& status) {
  std::string msg =
      status.message().empty() ? std::string(code_name(status.code())) : status.message();
  return Failure{exit_code_for(status.code()), context.empty() ? msg : context + ": " + msg};
}

Failure invalid_name(const std::string& context, const Status& status) {
  return Failure{kExitRefused, context + ": " + status.message() + "; nothing was sent"};
}

Failure interrupted(const std::string& what) {
  return Failure{kExitJobFailed, what.empty() ? "interrupted" : "interrupted; " + what};
}

}  // namespace zps::ctl
