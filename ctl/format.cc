#include "ctl/format.h"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace zps::ctl {
namespace {

std::string printf_string(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

// "0.90" -> "0.9", "5.00" -> "5".
std::string trim_zeros(std::string s) {
  if (s.find('.') == std::string::npos) return s;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::string scaled(double v, const char* suffix) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  // Whole bytes need no decimals; larger units get one.
  std::string n = u == 0 ? printf_string("%.0f", v) : printf_string("%.1f", v);
  return n + " " + kUnits[u] + suffix;
}

// "2 min 5 s", or "1 min" when the smaller unit is zero.
std::string two_units(uint64_t big, const char* big_unit, uint64_t small, const char* small_unit) {
  std::string out = std::to_string(big) + " " + big_unit;
  if (small != 0) out += " " + std::to_string(small) + " " + small_unit;
  return out;
}

}  // namespace

std::string human_bytes(uint64_t bytes) { return scaled(static_cast<double>(bytes), ""); }

std::string human_rate(double bytes_per_second) {
  if (!std::isfinite(bytes_per_second) || bytes_per_second < 0) bytes_per_second = 0;
  return scaled(bytes_per_second, "/s");
}

std::string format_seconds(double s) {
  if (!std::isfinite(s) || s < 0) s = 0;
  if (s < 10) return trim_zeros(printf_string("%.2f", s)) + " s";
  if (s < 60) return trim_zeros(printf_string("%.1f", s)) + " s";
  const auto total = static_cast<uint64_t>(std::llround(s));
  if (total < 3600) return two_units(total / 60, "min", total % 60, "s");
  return two_units(total / 3600, "h", total % 3600 / 60, "min");
}

std::string format_age_ms(uint64_t ms) {
  if (ms < 10000) {
    return trim_zeros(printf_string("%.1f", static_cast<double>(ms) / 1000)) + " s ago";
  }
  return format_seconds(static_cast<double>(ms) / 1000) + " ago";
}

std::string format_time_ms(uint64_t unix_ms) {
  if (unix_ms == 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string describe_send(std::string_view from, std::string_view to) {
  const std::string target = "@" + std::string(to);
  if (from.empty()) return "full " + target;
  // A clone's first hop names its origin in full (pool/base@s1).
  if (from.find('@') != std::string_view::npos) return "-i " + std::string(from) + " " + target;
  return "-i @" + std::string(from) + " " + target;
}

std::string describe_hop(std::string_view dataset, uint32_t hop, uint32_t of, std::string_view from,
                         std::string_view to) {
  std::string out(dataset);
  out += " hop " + std::to_string(hop);
  if (of >= hop && of > 0) out += "/" + std::to_string(of);
  if (!to.empty()) out += " " + describe_send(from, to);
  return out;
}

}  // namespace zps::ctl
