#include "shared/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cctype>
#include <memory>

namespace zps {
namespace {

// The message, escaped for a JSON string: log text can contain anything a peer sent.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char ch : std::string_view(msg.payload.data(), msg.payload.size())) {
      auto c = static_cast<unsigned char>(ch);
      switch (c) {
        case '"': dest.append(std::string_view("\\\"")); break;
        case '\\': dest.append(std::string_view("\\\\")); break;
        case '\n': dest.append(std::string_view("\\n")); break;
        case '\t': dest.append(std::string_view("\\t")); break;
        case '\r': dest.append(std::string_view("\\r")); break;
        default:
          if (c < 0x20 || c >= 0x7f) {
            const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
            dest.append(esc, esc + sizeof(esc));
          } else {
            dest.push_back(ch);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// The level in capitals, right-aligned like the seed's bunyan lines (" INFO", " WARN").
class UpperLevelFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    auto name = spdlog::level::to_string_view(msg.level);
    std::string upper(name.data(), name.size());
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper == "WARNING") upper = "WARN";
    if (upper == "CRITICAL") upper = "FATAL";
    while (upper.size() < 5) upper.insert(upper.begin(), ' ');
    dest.append(upper.data(), upper.data() + upper.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<UpperLevelFlag>();
  }
};

std::string host_name() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) return "unknown";
  return host;
}

}  // namespace

Status init_logging(std::string_view program, std::string_view format, std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return Status(Code::kInvalidArgument, "unknown log level '" + std::string(level) + "'");
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  const std::string who = std::string(program) + "/" + std::to_string(getpid());
  if (format == "json") {
    formatter->add_flag<JsonMessageFlag>('*');
    formatter->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","program":")" +
                           std::string(program) + R"(","pid":%P,"host":")" + host_name() +
                           R"(","msg":"%*"})");
  } else if (format == "text") {
    formatter->add_flag<UpperLevelFlag>('L');
    formatter->set_pattern("[%Y-%m-%dT%H:%M:%S.%eZ] %L: " + who + " on " + host_name() + ": %v");
  } else {
    return Status(Code::kInvalidArgument, "unknown log format '" + std::string(format) +
                                              "' (use text or json)");
  }
  auto logger = std::make_shared<spdlog::logger>(
      std::string(program), std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(std::move(formatter));
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

}  // namespace zps
