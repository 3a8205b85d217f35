// The msgpack field codec: every supported field type survives a round trip, every wrong
// type or range is an error naming the field, and the pre-scan refuses lying input
// before anything is allocated for it.
#include "shared/wire.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "tests/unit/alloc_meter.h"

namespace zps::wire {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// Raw msgpack bytes written by `f`, for inputs the Writer would never produce.
std::string raw(const std::function<void(Packer&)>& f) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  f(pk);
  return std::string(buf.data(), buf.size());
}

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out.append(s);
  return out;
}

struct Inner {
  uint64_t x = 0;
  std::string s;
  template <class V>
  void fields(V& v) {
    v("x", x);
    v("s", s);
  }
};

struct Everything {
  bool b = false;
  int8_t i8 = 0;
  uint8_t u8 = 0;
  int16_t i16 = 0;
  uint16_t u16 = 0;
  int32_t i32 = 0;
  uint32_t u32 = 0;
  int64_t i64 = 0;
  uint64_t u64 = 0;
  double d = 0;
  std::string s;
  std::vector<std::string> strings;
  std::vector<int64_t> numbers;
  std::optional<uint32_t> some;
  std::optional<std::string> none = "default";  // nil on the wire must clear it
  Inner inner;
  std::vector<Inner> inners;
  std::optional<Inner> maybe_inner;
  std::vector<std::vector<uint8_t>> nested;
  template <class V>
  void fields(V& v) {
    v("b", b);
    v("i8", i8);
    v("u8", u8);
    v("i16", i16);
    v("u16", u16);
    v("i32", i32);
    v("u32", u32);
    v("i64", i64);
    v("u64", u64);
    v("d", d);
    v("s", s);
    v("strings", strings);
    v("numbers", numbers);
    v("some", some);
    v("none", none);
    v("inner", inner);
    v("inners", inners);
    v("maybe_inner", maybe_inner);
    v("nested", nested);
  }
};

// Sixteen strings: a struct far larger than the one byte an empty map takes on the wire.
struct Fat {
  std::string s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15;
  template <class V>
  void fields(V& v) {
    for (auto [key, field] : {std::pair<const char*, std::string*>{"s0", &s0}, {"s1", &s1},
                              {"s2", &s2}, {"s3", &s3}, {"s4", &s4}, {"s5", &s5}, {"s6", &s6},
                              {"s7", &s7}, {"s8", &s8}, {"s9", &s9}, {"s10", &s10},
                              {"s11", &s11}, {"s12", &s12}, {"s13", &s13}, {"s14", &s14},
                              {"s15", &s15}}) {
      v(key, *field);
    }
  }
};

struct Fats {
  std::vector<Fat> fats;
  template <class V>
  void fields(V& v) {
    v("fats", fats);
  }
};

template <HasFields T>
std::string bytes_of(const T& v) {
  auto buf = pack(v);
  return std::string(buf.data(), buf.size());
}

Everything full_sample() {
  Everything e;
  e.b = true;
  e.i8 = std::numeric_limits<int8_t>::min();
  e.u8 = std::numeric_limits<uint8_t>::max();
  e.i16 = std::numeric_limits<int16_t>::min();
  e.u16 = std::numeric_limits<uint16_t>::max();
  e.i32 = std::numeric_limits<int32_t>::min();
  e.u32 = std::numeric_limits<uint32_t>::max();
  e.i64 = std::numeric_limits<int64_t>::min();
  e.u64 = std::numeric_limits<uint64_t>::max();
  e.d = -1.5e300;
  e.s = std::string("with\0nul and \xc3\xa9", 16);
  e.strings = {"", "a", std::string(300, 'x')};
  e.numbers = {-1, 0, std::numeric_limits<int64_t>::max()};
  e.some = 42;
  e.none.reset();
  e.inner = {7, "seven"};
  e.inners = {{1, "one"}, {2, ""}};
  e.maybe_inner = Inner{3, "three"};
  e.nested = {{}, {1, 2, 255}};
  return e;
}

TEST(WireRoundTripTest, EveryFieldTypeSurvives) {
  const Everything in = full_sample();
  const std::string bytes = bytes_of(in);
  auto out = unpack_as<Everything>(bytes.data(), bytes.size());
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->b, in.b);
  EXPECT_EQ(out->i8, in.i8);
  EXPECT_EQ(out->u8, in.u8);
  EXPECT_EQ(out->i16, in.i16);
  EXPECT_EQ(out->u16, in.u16);
  EXPECT_EQ(out->i32, in.i32);
  EXPECT_EQ(out->u32, in.u32);
  EXPECT_EQ(out->i64, in.i64);
  EXPECT_EQ(out->u64, in.u64);
  EXPECT_EQ(out->d, in.d);
  EXPECT_EQ(out->s, in.s);
  EXPECT_EQ(out->strings, in.strings);
  EXPECT_EQ(out->numbers, in.numbers);
  EXPECT_EQ(out->some, in.some);
  EXPECT_FALSE(out->none.has_value());
  EXPECT_EQ(out->inner.x, 7u);
  EXPECT_EQ(out->inner.s, "seven");
  ASSERT_EQ(out->inners.size(), 2u);
  EXPECT_EQ(out->inners[1].x, 2u);
  ASSERT_TRUE(out->maybe_inner.has_value());
  EXPECT_EQ(out->maybe_inner->s, "three");
  EXPECT_EQ(out->nested, in.nested);
  // Everything else, and the order of keys: the bytes are the same.
  EXPECT_EQ(bytes_of(*out), bytes);
}

TEST(WireRoundTripTest, CountsFieldsForEnvelopes) {
  EXPECT_EQ(Writer::count_fields(Everything{}), 19u);
  EXPECT_EQ(Writer::count_fields(Inner{}), 2u);
}

struct Defaults {
  uint32_t n = 7;
  std::string s = "keep";
  std::optional<uint32_t> o = 3;
  template <class V>
  void fields(V& v) {
    v("n", n);
    v("s", s);
    v("o", o);
  }
};

TEST(WireReaderTest, MissingKeysKeepTheirDefaults) {
  const std::string empty_map = raw([](Packer& pk) { pk.pack_map(0); });
  auto out = unpack_as<Defaults>(empty_map.data(), empty_map.size());
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->n, 7u);
  EXPECT_EQ(out->s, "keep");
  EXPECT_EQ(out->o, 3u);
}

TEST(WireReaderTest, UnknownKeysOfAnyShapeAreIgnored) {
  const std::string bytes = raw([](Packer& pk) {
    pk.pack_map(5);
    pk.pack(1);  // a non-string key
    pk.pack("one");
    pk.pack("future_field");
    pk.pack_map(1);
    pk.pack("deep");
    pk.pack_array(0);
    pk.pack("x");
    pk.pack(9);
    pk.pack_array(1);  // an array as a key
    pk.pack(1);
    pk.pack_nil();
    pk.pack("s");
    pk.pack("nine");
  });
  auto out = unpack_as<Inner>(bytes.data(), bytes.size());
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->x, 9u);
  EXPECT_EQ(out->s, "nine");
}

TEST(WireReaderTest, NarrowIntegersAcceptTheirWholeRange) {
  const std::string bytes = raw([](Packer& pk) {
    pk.pack_map(4);
    pk.pack("i8");
    pk.pack(127);
    pk.pack("i16");
    pk.pack(-32768);
    pk.pack("i32");
    pk.pack(uint64_t{2147483647});  // a positive integer into a signed field
    pk.pack("d");
    pk.pack(-3);  // integers are numbers too
  });
  auto out = unpack_as<Everything>(bytes.data(), bytes.size());
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->i8, 127);
  EXPECT_EQ(out->i16, -32768);
  EXPECT_EQ(out->i32, 2147483647);
  EXPECT_EQ(out->d, -3.0);
}

// One field of Everything set to a value of the wrong type or range.
struct FieldCase {
  const char* name;
  const char* key;
  std::function<void(Packer&)> value;
  const char* want;  // expected error message
};

std::vector<FieldCase> field_cases() {
  return {
      {"bool_from_int", "b", [](Packer& pk) { pk.pack(1); },
       "field 'b' should be a boolean but is an unsigned integer"},
      {"uint8_overflow", "u8", [](Packer& pk) { pk.pack(256); }, "field 'u8' is out of range"},
      {"int8_underflow", "i8", [](Packer& pk) { pk.pack(-129); }, "field 'i8' is out of range"},
      {"int8_overflow", "i8", [](Packer& pk) { pk.pack(128); }, "field 'i8' is out of range"},
      {"uint16_overflow", "u16", [](Packer& pk) { pk.pack(65536); }, "field 'u16' is out of range"},
      {"int16_underflow", "i16", [](Packer& pk) { pk.pack(-32769); },
       "field 'i16' is out of range"},
      {"uint32_overflow", "u32", [](Packer& pk) { pk.pack(uint64_t{1} << 32); },
       "field 'u32' is out of range"},
      {"int32_overflow", "i32", [](Packer& pk) { pk.pack(uint64_t{1} << 31); },
       "field 'i32' is out of range"},
      {"int32_underflow", "i32", [](Packer& pk) { pk.pack(-(int64_t{1} << 31) - 1); },
       "field 'i32' is out of range"},
      {"int64_overflow", "i64", [](Packer& pk) { pk.pack(uint64_t{1} << 63); },
       "field 'i64' is out of range"},
      {"uint64_negative", "u64", [](Packer& pk) { pk.pack(-1); },
       "field 'u64' should be an unsigned integer but is a negative integer"},
      // msgpack-c packs integral doubles as integers, so these floats have fractions.
      {"uint64_float", "u64", [](Packer& pk) { pk.pack_double(1.5); },
       "field 'u64' should be an unsigned integer but is a float"},
      {"int64_float32", "i64", [](Packer& pk) { pk.pack_float(2.5f); },
       "field 'i64' should be an integer but is a float"},
      {"double_string", "d", [](Packer& pk) { pk.pack("1.5"); },
       "field 'd' should be a number but is a string"},
      {"string_binary", "s", [](Packer& pk) { pk.pack_bin(1), pk.pack_bin_body("x", 1); },
       "field 's' should be a string but is binary"},
      {"string_nil", "s", [](Packer& pk) { pk.pack_nil(); },
       "field 's' should be a string but is nil"},
      {"string_extension", "s", [](Packer& pk) { pk.pack_ext(1, 5), pk.pack_ext_body("x", 1); },
       "field 's' should be a string but is an extension"},
      {"array_string", "strings", [](Packer& pk) { pk.pack("a,b"); },
       "field 'strings' should be an array but is a string"},
      {"array_element", "strings", [](Packer& pk) { pk.pack_array(2), pk.pack("a"), pk.pack(2); },
       "field 'strings[1]' should be a string but is an unsigned integer"},
      {"struct_array", "inner", [](Packer& pk) { pk.pack_array(0); },
       "field 'inner' should be a map but is an array"},
      {"nested_path", "inners",
       [](Packer& pk) {
         pk.pack_array(2);
         pk.pack_map(0);
         pk.pack_map(1), pk.pack("s"), pk.pack(5);
       },
       "field 'inners[1].s' should be a string but is an unsigned integer"},
      {"optional_wrong", "some", [](Packer& pk) { pk.pack("x"); },
       "field 'some' should be an unsigned integer but is a string"},
      {"optional_struct", "maybe_inner", [](Packer& pk) { pk.pack_map(1), pk.pack("x"), pk.pack(-1); },
       "field 'maybe_inner.x' should be an unsigned integer but is a negative integer"},
      {"nested_array_range", "nested",
       [](Packer& pk) {
         pk.pack_array(2);
         pk.pack_array(1), pk.pack(1);
         pk.pack_array(1), pk.pack(300);
       },
       "field 'nested[1][0]' is out of range"},
      {"struct_too_many_keys", "inner",
       [](Packer& pk) {
         pk.pack_map(kMaxMapEntries + 1);
         for (size_t i = 0; i <= kMaxMapEntries; ++i) pk.pack(i), pk.pack_nil();
       },
       "inner has 257 keys, more than the limit of 256"},
  };
}

void PrintTo(const FieldCase& c, std::ostream* os) { *os << c.name; }

class WireFieldTest : public ::testing::TestWithParam<FieldCase> {};

TEST_P(WireFieldTest, WrongTypeOrRangeIsAnErrorNamingTheField) {
  const FieldCase& c = GetParam();
  const std::string bytes = raw([&](Packer& pk) {
    pk.pack_map(2);
    pk.pack("unrelated");  // the bad field is not the first key
    pk.pack(true);
    pk.pack(c.key);
    c.value(pk);
  });
  Result<Everything> out = Status::Ok();
  ASSERT_NO_THROW(out = unpack_as<Everything>(bytes.data(), bytes.size()));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Code::kProtocol);
  EXPECT_EQ(out.status().message(), c.want);
}

INSTANTIATE_TEST_SUITE_P(Table, WireFieldTest, ::testing::ValuesIn(field_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(WireReaderTest, FirstErrorInFieldOrderIsKept) {
  const std::string bytes = raw([](Packer& pk) {
    pk.pack_map(2);
    pk.pack("s");  // listed after u8 in fields(), so reported second
    pk.pack(1);
    pk.pack("u8");
    pk.pack(-1);
  });
  auto out = unpack_as<Everything>(bytes.data(), bytes.size());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(),
            "field 'u8' should be an unsigned integer but is a negative integer");
}

// ---- The pre-scan ----------------------------------------------------------------

std::string nested_arrays(size_t depth) { return repeat("\x91", depth) + "\xc0"; }

std::string str32(size_t n) {
  std::string s = "\xdb";
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>(n >> shift));
  return s + std::string(n, 'a');
}

TEST(WirePrescanLimitsTest, AcceptsValuesAtTheLimits) {
  const std::vector<std::pair<const char*, std::string>> good = {
      {"depth", nested_arrays(kMaxDepth)},
      {"longest_string", str32(kMaxStringBytes)},
      {"longest_binary", raw([](Packer& pk) {
         pk.pack_bin(kMaxStringBytes);
         pk.pack_bin_body(std::string(kMaxStringBytes, 'b').data(), kMaxStringBytes);
       })},
      {"most_elements", raw([](Packer& pk) {
         pk.pack_array(kMaxElements);
         for (size_t i = 0; i < kMaxElements; ++i) pk.pack_nil();
       })},
      {"scalar", "\x2a"},
      {"empty_map", "\x80"},
  };
  for (const auto& [name, bytes] : good) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(prescan(bytes.data(), bytes.size()).ok())
        << prescan(bytes.data(), bytes.size()).to_string();
    EXPECT_TRUE(unpack_bounded(bytes.data(), bytes.size()).ok());
  }
}

struct ScanCase {
  const char* name;
  std::string bytes;
  const char* want;  // a substring of the error message
};

std::vector<ScanCase> scan_cases() {
  return {
      {"empty", "", "empty message body"},
      {"reserved_byte", "\xc1", "malformed msgpack"},
      {"truncated_array", "\x92\x01", "truncated msgpack"},
      {"truncated_header", "\xcd\x01", "truncated msgpack"},
      {"map32_of_4g_entries", "\xdf\xff\xff\xff\xff",
       "map declares 4294967295 entries, more than the 5-byte input can hold"},
      {"array32_of_4g_elements", "\xdd\xff\xff\xff\xff",
       "array declares 4294967295 elements, more than the 5-byte input can hold"},
      {"map16_in_3_bytes", "\xde\xff\xff", "more than the 3-byte input can hold"},
      // Each array alone fits in the 19 bytes; the second one's 13 on top of the first's
      // 2 + 5 do not.
      {"declared_elements_add_up",
       "\x92\x95" + repeat("\xc0", 5) + std::string("\xdc\x00\x0d", 3) + repeat("\xc0", 9),
       "array declares 13 elements, more than the 19-byte input can hold"},
      {"str32_of_4g", "\xdb\xff\xff\xff\xff", "truncated msgpack"},
      {"bin32_of_4g", "\xc6\xff\xff\xff\xff", "truncated msgpack"},
      {"ext32_of_4g", "\xc9\xff\xff\xff\xff\x01", "truncated msgpack"},
      {"deep_arrays", nested_arrays(1000), "nesting deeper than 12 levels"},
      {"one_level_too_deep", nested_arrays(kMaxDepth + 1), "nesting deeper than 12 levels"},
      {"deep_maps", repeat("\x81\xa1k", 1000) + "\xc0", "nesting deeper than 12 levels"},
      {"long_string", str32(kMaxStringBytes + 1), "string of 1048577 bytes exceeds the limit"},
      {"long_binary", raw([](Packer& pk) {
         pk.pack_bin(kMaxStringBytes + 1);
         pk.pack_bin_body(std::string(kMaxStringBytes + 1, 'b').data(), kMaxStringBytes + 1);
       }),
       "binary of 1048577 bytes exceeds the limit"},
      {"long_extension", raw([](Packer& pk) {
         pk.pack_ext(kMaxStringBytes + 1, 1);
         pk.pack_ext_body(std::string(kMaxStringBytes + 1, 'e').data(), kMaxStringBytes + 1);
       }),
       // msgpack counts the type byte with the data.
       "extension of 1048578 bytes exceeds the limit"},
      {"too_many_elements", raw([](Packer& pk) {
         pk.pack_array(kMaxElements + 1);
         for (size_t i = 0; i <= kMaxElements; ++i) pk.pack_nil();
       }),
       "array declares 1048577 elements, more than the limit of 1048576 elements"},
      {"oversized", std::string(kMaxMessageBytes + 1, '\0'), "exceeds the limit of 8388608"},
      {"trailing_bytes", "\x80\x01\x02", "trailing 2 bytes after the msgpack value"},
      {"two_values", "\x80\x80", "trailing 1 bytes"},
  };
}

void PrintTo(const ScanCase& c, std::ostream* os) { *os << c.name; }

class WirePrescanTest : public ::testing::TestWithParam<ScanCase> {};

// The pre-scan builds nothing, so refusing even a declared 4 GiB costs no more than the
// error message.
TEST_P(WirePrescanTest, RefusesWithoutAllocating) {
  const ScanCase& c = GetParam();
  Status s;
  int64_t peak = 0;
  {
    alloc_meter::PeakScope scope;
    ASSERT_NO_THROW(s = prescan(c.bytes.data(), c.bytes.size()));
    peak = scope.peak_growth();
  }
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_NE(s.message().find(c.want), std::string::npos) << s.message();
  if (alloc_meter::enabled()) {
    EXPECT_LT(peak, 4096) << "bytes allocated by prescan";
  }
  RecordProperty("peak_bytes", std::to_string(peak));

  // unpack_bounded refuses the same input the same way.
  Result<msgpack::object_handle> h = Status::Ok();
  ASSERT_NO_THROW(h = unpack_bounded(c.bytes.data(), c.bytes.size()));
  EXPECT_FALSE(h.ok());
}

INSTANTIATE_TEST_SUITE_P(Table, WirePrescanTest, ::testing::ValuesIn(scan_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// An empty map is one byte on the wire and a whole struct in memory: a vector of a
// million of them must be refused before the vector is built, not after.
TEST(WireReaderTest, ElementsThatExpandAreRefusedWithinBoundedMemory) {
  const size_t n = 1000000;
  const std::string bytes = raw([&](Packer& pk) {
    pk.pack_map(1);
    pk.pack("fats");
    pk.pack_array(n);
    for (size_t i = 0; i < n; ++i) pk.pack_map(0);
  });
  ASSERT_LT(bytes.size(), kMaxMessageBytes);
  Result<Fats> out = Status::Ok();
  int64_t peak = 0;
  {
    alloc_meter::PeakScope scope;
    ASSERT_NO_THROW(out = unpack_as<Fats>(bytes.data(), bytes.size()));
    peak = scope.peak_growth();
  }
  ASSERT_FALSE(out.ok()) << "a million 512-byte structs from one megabyte";
  EXPECT_EQ(out.status().code(), Code::kProtocol);
  EXPECT_NE(out.status().message().find("fats"), std::string::npos) << out.status().message();
  if (alloc_meter::enabled()) {
    EXPECT_LT(peak, int64_t{64} << 20);
  }
  RecordProperty("peak_bytes", std::to_string(peak));
  std::printf("peak while refusing 1e6 empty maps as structs: %.1f MiB\n", peak / 1048576.0);
}

// A vector of many small, honest elements is still fine.
struct Numbers {
  std::vector<uint64_t> v;
  template <class V>
  void fields(V& f) {
    f("v", v);
  }
};

TEST(WireReaderTest, LargeHonestVectorsDecode) {
  Numbers in;
  for (uint64_t i = 0; i < 500000; ++i) in.v.push_back(i * 7919);
  const std::string bytes = bytes_of(in);
  auto out = unpack_as<Numbers>(bytes.data(), bytes.size());
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->v, in.v);
}

TEST(WireMeterTest, SeesMallocAndNew) {
  if (!alloc_meter::enabled()) GTEST_SKIP() << "allocation meter off under a sanitizer";
  alloc_meter::PeakScope scope;
  {
    std::vector<char> v(1 << 20);
    v[0] = 1;
  }
  EXPECT_GE(scope.peak_growth(), 1 << 20);
}

}  // namespace
}  // namespace zps::wire
