// Small human-readable renderings zpsctl's tables and progress lines share: sizes,
// durations, rates, times, and how a hop is described.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace zps::ctl {

// 512 -> "512 B", 1258291 -> "1.2 MiB".
std::string human_bytes(uint64_t bytes);
// Bytes per second: "15.0 MiB/s".
std::string human_rate(double bytes_per_second);
// 5 -> "5 s", 0.08 -> "0.08 s", 0.9 -> "0.9 s", 125 -> "2 min 5 s", 3720 -> "1 h 2 min".
std::string format_seconds(double seconds);
// A duration in the past, from milliseconds: "0.4 s ago".
std::string format_age_ms(uint64_t ms);
// Unix milliseconds as local time "2024-05-01 12:00:03"; 0 -> "-".
std::string format_time_ms(uint64_t unix_ms);

// How a hop sends: "full @s1", "-i @s1 @s2", or for a clone's first hop
// "-i pool/base@s1 @c1" (`from` is then the origin's full name).
std::string describe_send(std::string_view from, std::string_view to);
// "zones/test hop 3/7 -i @now2 @8550" (" hop 3" when the total is unknown).
std::string describe_hop(std::string_view dataset, uint32_t hop, uint32_t of, std::string_view from,
                         std::string_view to);

}  // namespace zps::ctl
