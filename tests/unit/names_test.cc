#include "shared/names.h"

#include <gtest/gtest.h>

#include <string>

namespace zps {
namespace {

enum class Kind { kDataset, kSnapshot, kSnapshotComponent };

struct NameCase {
  const char* label;  // the ctest name of the case
  std::string name;
  Kind kind;
  // Empty for a good name; else a piece of the error message that names the rule.
  const char* rule;
};

std::ostream& operator<<(std::ostream& os, const NameCase& c) { return os << c.label; }

Status validate(const NameCase& c) {
  switch (c.kind) {
    case Kind::kDataset:
      return validate_dataset_name(c.name);
    case Kind::kSnapshot:
      return validate_snapshot_name(c.name);
    case Kind::kSnapshotComponent:
      return validate_snapshot_component(c.name);
  }
  return Status(Code::kInternal, "unknown kind");
}

const std::string k255 = "p/" + std::string(253, 'a');
const std::string k256 = "p/" + std::string(254, 'a');
const std::string k255_snapshot = "pool/a@" + std::string(248, 's');

const NameCase kCases[] = {
    // Good names.
    {"pool", "pool", Kind::kDataset, ""},
    {"nested", "pool/a/b", Kind::kDataset, ""},
    {"underscore", "tank/under_score", Kind::kDataset, ""},
    {"dot", "tank/dot.ted", Kind::kDataset, ""},
    {"colon", "tank/co:lon", Kind::kDataset, ""},
    {"dash_inside", "tank/da-sh", Kind::kDataset, ""},
    {"leading_dot_component", "tank/.hidden", Kind::kDataset, ""},
    {"uppercase_pool", "Tank1/Data", Kind::kDataset, ""},
    {"exactly_255_bytes", k255, Kind::kDataset, ""},
    {"snapshot", "pool/a@now", Kind::kSnapshot, ""},
    {"snapshot_auto_name", "zones/test@auto-2024-01-01_00:00", Kind::kSnapshot, ""},
    {"snapshot_numeric", "zones/test@4387", Kind::kSnapshot, ""},
    {"snapshot_exactly_255_bytes", k255_snapshot, Kind::kSnapshot, ""},
    {"component_auto_name", "auto-2024-01-01_00:00", Kind::kSnapshotComponent, ""},
    // Bad names.
    {"empty", "", Kind::kDataset, "is empty"},
    {"leading_slash", "/a", Kind::kDataset, "empty component"},
    {"trailing_slash", "a/", Kind::kDataset, "empty component"},
    {"double_slash", "a//b", Kind::kDataset, "empty component"},
    {"dotdot_first", "../x", Kind::kDataset, "'..' component"},
    {"dotdot_inside", "a/../b", Kind::kDataset, "'..' component"},
    {"dot_last", "a/.", Kind::kDataset, "'.' component"},
    {"option_pool", "-o", Kind::kDataset, "starting with '-'"},
    {"option_component", "a/-o", Kind::kDataset, "starting with '-'"},
    {"space", "a b", Kind::kDataset, "a space"},
    {"semicolon", "a;rm", Kind::kDataset, "the character ';'"},
    {"command_substitution", "a$(x)", Kind::kDataset, "the character '$'"},
    {"backticks", "a`x`", Kind::kDataset, "the character '`'"},
    {"pipe", "a|b", Kind::kDataset, "the character '|'"},
    {"newline", "a\nb", Kind::kDataset, "the byte \\x0a"},
    {"embedded_nul", std::string("a\0b", 3), Kind::kDataset, "a NUL byte"},
    {"non_utf8", "\xff", Kind::kDataset, "the byte \\xff"},
    {"non_utf8_component", "tank/caf\xc3", Kind::kDataset, "the byte \\xc3"},
    {"over_255_bytes", k256, Kind::kDataset, "256 bytes long"},
    {"at_in_dataset", "a@b", Kind::kDataset, "contains '@'"},
    {"two_ats", "a@b@c", Kind::kSnapshot, "more than one '@'"},
    {"percent", "a%b", Kind::kDataset, "'%', which ZFS reserves"},
    {"hash", "a#b", Kind::kDataset, "'#', which ZFS reserves for bookmarks"},
    {"reserved_mirror", "mirror", Kind::kDataset, "reserves for vdevs"},
    {"reserved_raidz2", "raidz2/x", Kind::kDataset, "reserves for vdevs"},
    {"reserved_log", "log", Kind::kDataset, "reserves for vdevs"},
    {"disk_like", "c0t0d0", Kind::kDataset, "looks like a disk"},
    {"digit_first", "1pool", Kind::kDataset, "must start with a letter"},
    {"snapshot_without_at", "pool/a", Kind::kSnapshot, "has no '@'"},
    {"snapshot_empty_after_at", "pool/a@", Kind::kSnapshot, "nothing after '@'"},
    {"snapshot_empty_dataset", "@now", Kind::kSnapshot, "empty component"},
    {"snapshot_dotdot", "pool/a@..", Kind::kSnapshot, "'..' component"},
    {"snapshot_option", "pool/a@-F", Kind::kSnapshot, "starting with '-'"},
    {"snapshot_over_255_bytes", k255_snapshot + "s", Kind::kSnapshot, "256 bytes long"},
    {"component_with_slash", "a/b", Kind::kSnapshotComponent, "the character '/'"},
    {"component_option", "-x", Kind::kSnapshotComponent, "starting with '-'"},
};

class NameRuleTest : public ::testing::TestWithParam<NameCase> {};

TEST_P(NameRuleTest, FollowsZfsRules) {
  const NameCase& c = GetParam();
  Status s = validate(c);
  if (std::string(c.rule).empty()) {
    EXPECT_TRUE(s.ok()) << s.to_string();
    return;
  }
  ASSERT_FALSE(s.ok()) << quote_name(c.name) << " was accepted";
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find(c.rule), std::string::npos)
      << "message does not name the rule (" << c.rule << "): " << s.message();
  if (!c.name.empty()) {
    EXPECT_NE(s.message().find(quote_name(c.name)), std::string::npos)
        << "message does not quote the name: " << s.message();
  }
}

INSTANTIATE_TEST_SUITE_P(Table, NameRuleTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<NameCase>& info) {
                           return std::string(info.param.label);
                         });

TEST(QuoteNameTest, ShowsHostileBytesEscapedAndCutsLongNames) {
  EXPECT_EQ(quote_name("pool/a"), "'pool/a'");
  EXPECT_EQ(quote_name(std::string("a\0b\n", 4)), "'a\\x00b\\x0a'");
  EXPECT_EQ(quote_name("it's"), "'it\\x27s'");
  std::string quoted = quote_name(std::string(300, 'x'));
  EXPECT_EQ(quoted, "'" + std::string(80, 'x') + "...'");
}

TEST(NameHelpersTest, ParentOfNestedAndTopLevel) {
  EXPECT_EQ(parent_dataset("pool/a/b"), "pool/a");
  EXPECT_EQ(parent_dataset("pool"), "");
}

TEST(NameHelpersTest, SameOrBelowRespectsComponentBoundaries) {
  EXPECT_TRUE(is_same_or_below("a/b", "a"));
  EXPECT_TRUE(is_same_or_below("a", "a"));
  EXPECT_FALSE(is_same_or_below("ab", "a"));
  EXPECT_FALSE(is_same_or_below("a", "a/b"));
  EXPECT_FALSE(is_same_or_below("a", ""));
}

TEST(NameHelpersTest, SplitSnapshot) {
  auto [ds, snap] = split_snapshot("pool/a@s1");
  EXPECT_EQ(ds, "pool/a");
  EXPECT_EQ(snap, "s1");
  auto [ds2, snap2] = split_snapshot("pool/a");
  EXPECT_EQ(ds2, "pool/a");
  EXPECT_EQ(snap2, "");
}

}  // namespace
}  // namespace zps
