// The planner, case by case: one row per situation a replication can meet, plus
// simulations that apply plan after plan to an in-memory target like the sender does.
#include "shared/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

namespace zps {
namespace {

constexpr const char* kSource = "zones/test";
constexpr const char* kTarget = "backup/zones/test";

// The seed's snapshots in creation order: their names do not sort, neither as text nor
// as numbers. Guids are 101.., createtxgs 10, 20, ...
const std::vector<std::string> kSeedNames = {"now",   "now2",  "8550", "18569",
                                             "20392", "30577", "4387"};

SnapshotVersion seed(const std::string& name) {
  auto it = std::find(kSeedNames.begin(), kSeedNames.end(), name);
  EXPECT_NE(it, kSeedNames.end()) << name;
  uint64_t i = static_cast<uint64_t>(it - kSeedNames.begin());
  return {name, 101 + i, 10 * (i + 1)};
}

std::vector<SnapshotVersion> seeds(const std::vector<std::string>& names) {
  std::vector<SnapshotVersion> out;
  for (const auto& n : names) out.push_back(seed(n));
  return out;
}

std::vector<SnapshotVersion> seed_chain() { return seeds(kSeedNames); }

std::vector<SnapshotVersion> seed_shuffled() {
  return seeds({"30577", "now2", "4387", "8550", "now", "20392", "18569"});
}

SourceView source(std::vector<SnapshotVersion> snaps) {
  return SourceView{kSource, std::move(snaps), std::nullopt};
}

// A clone zones/clone of zones/base@s1 (guid 900) with snapshots c1, c2, c3.
const OriginRef kOrigin{"zones/base", "s1", 900};
const std::vector<SnapshotVersion> kCloneSnaps = {{"c1", 501, 110}, {"c2", 502, 120},
                                                  {"c3", 503, 130}};

SourceView clone_source() { return SourceView{"zones/clone", kCloneSnaps, kOrigin}; }

TargetView missing(bool has_origin = false) {
  return TargetView{kTarget, false, {}, has_origin};
}

TargetView target(std::vector<SnapshotVersion> snaps) {
  return TargetView{kTarget, true, std::move(snaps), false};
}

// What a successful plan must look like. `description` is describe()'s output;
// `warning` a substring of the only warning, or empty when there must be none.
struct ExpectHop {
  HopKind kind;
  std::string from;
  std::string to;
  uint64_t to_guid;
  bool force_receive;
  size_t remaining;
  std::string description;
  std::string warning;
};

// What a refusal must look like: its code and substrings of its message.
struct ExpectError {
  Code code;
  std::vector<std::string> message_has;
};

struct PlanCase {
  std::string name;
  SourceView source;
  TargetView target;
  PlanOptions options;
  std::variant<ExpectHop, ExpectError> expect;
};

constexpr PlanOptions kNoForce{false};
constexpr PlanOptions kForce{true};

std::vector<PlanCase> plan_cases() {
  return {
      // Nothing to send: always the source's fault, whatever the target or options.
      {"SourceHasNoSnapshots", source({}), missing(), kNoForce,
       ExpectError{Code::kNoSnapshots, {"source zones/test", "zfs snapshot zones/test@<name>"}}},
      {"SourceHasNoSnapshotsEvenWithForce", source({}), target(seeds({"now"})), kForce,
       ExpectError{Code::kNoSnapshots, {"zones/test has no snapshots"}}},

      // A missing target starts with a full send of the oldest snapshot.
      {"TargetMissingFullOfFirst", source(seed_chain()), missing(), kNoForce,
       ExpectHop{HopKind::kFull, "", "now", 101, false, 7, "full @now", ""}},
      {"TargetMissingShuffledInputStillFirstByCreation", source(seed_shuffled()), missing(),
       kNoForce, ExpectHop{HopKind::kFull, "", "now", 101, false, 7, "full @now", ""}},
      {"SingleSnapshotTargetMissing", source(seeds({"now"})), missing(), kNoForce,
       ExpectHop{HopKind::kFull, "", "now", 101, false, 1, "full @now", ""}},
      {"SingleSnapshotUpToDate", source(seeds({"now"})), target(seeds({"now"})), kNoForce,
       ExpectHop{HopKind::kUpToDate, "", "", 0, false, 0, "up to date", ""}},
      {"EqualCreatetxgKeepsListingOrder", source({{"b", 2, 5}, {"a", 1, 5}}), missing(),
       kNoForce, ExpectHop{HopKind::kFull, "", "b", 2, false, 2, "full @b", ""}},

      // An existing target without snapshots is only overwritten when asked.
      {"TargetEmptyRefused", source(seed_chain()), target({}), kNoForce,
       ExpectError{Code::kRefused,
                   {"target backup/zones/test exists but has no snapshots", "--force",
                    "zfs recv -F", "source zones/test"}}},
      {"TargetEmptyForceOverwrites", source(seed_chain()), target({}), kForce,
       ExpectHop{HopKind::kFull, "", "now", 101, true, 7, "full @now (-F)", ""}},

      // Target behind: the next single snapshot after the common one, never a range.
      {"BehindAfterFirst", source(seed_chain()), target(seeds({"now"})), kNoForce,
       ExpectHop{HopKind::kIncremental, "now", "now2", 102, false, 6, "-i @now @now2", ""}},
      {"BehindInTheMiddle", source(seed_chain()),
       target(seeds({"now", "now2", "8550", "18569"})), kNoForce,
       ExpectHop{HopKind::kIncremental, "18569", "20392", 105, false, 3, "-i @18569 @20392",
                 ""}},
      {"BehindByOne", source(seed_chain()),
       target(seeds({"now", "now2", "8550", "18569", "20392", "30577"})), kNoForce,
       ExpectHop{HopKind::kIncremental, "30577", "4387", 107, false, 1, "-i @30577 @4387", ""}},
      {"TargetPrunedOldSnapshots", source(seed_chain()), target(seeds({"now", "8550"})),
       kNoForce,
       ExpectHop{HopKind::kIncremental, "8550", "18569", 104, false, 4, "-i @8550 @18569",
                 ""}},
      {"SourcePrunedAlreadySentSnapshots",
       source(seeds({"8550", "18569", "20392", "30577", "4387"})),
       target(seeds({"now", "now2", "8550"})), kNoForce,
       ExpectHop{HopKind::kIncremental, "8550", "18569", 104, false, 4, "-i @8550 @18569",
                 ""}},
      {"SeedNamesShuffledOnBothSides", source(seed_shuffled()),
       target(seeds({"8550", "now", "now2"})), kNoForce,
       ExpectHop{HopKind::kIncremental, "8550", "18569", 104, false, 4, "-i @8550 @18569",
                 ""}},
      {"NextDestroyedOnSourceTakesTheOneAfter",
       source(seeds({"now", "now2", "18569", "20392", "30577", "4387"})),
       target(seeds({"now", "now2"})), kNoForce,
       ExpectHop{HopKind::kIncremental, "now2", "18569", 104, false, 4, "-i @now2 @18569",
                 ""}},

      // Target has everything.
      {"TargetHasEverything", source(seed_chain()), target(seed_chain()), kNoForce,
       ExpectHop{HopKind::kUpToDate, "", "", 0, false, 0, "up to date", ""}},
      {"UpToDateWithForceStaysUpToDate", source(seed_chain()), target(seed_chain()), kForce,
       ExpectHop{HopKind::kUpToDate, "", "", 0, false, 0, "up to date", ""}},

      // No common snapshot: never overwritten, force or not.
      {"DivergedRefused", source(seed_chain()), target({{"a", 1, 10}, {"b", 2, 20}}),
       kNoForce,
       ExpectError{Code::kDiverged,
                   {"target backup/zones/test", "source zones/test", "none in common",
                    "zfs destroy -r backup/zones/test", "zfs rename backup/zones/test"}}},
      {"DivergedRefusedEvenWithForce", source(seed_chain()),
       target({{"a", 1, 10}, {"b", 2, 20}}), kForce,
       ExpectError{Code::kDiverged, {"even with --force", "zfs destroy -r"}}},
      {"DivergedSameNamesDifferentGuids", source(seed_chain()),
       target({{"now", 201, 10}, {"now2", 202, 20}}), kForce,
       ExpectError{Code::kDiverged, {"matched by guid"}}},

      // Target has snapshots after the common one that the source lacks.
      {"TargetNewerRefused", source(seed_chain()),
       target({seed("now"), seed("now2"), {"x", 301, 30}, {"y", 302, 40}}), kNoForce,
       ExpectError{Code::kTargetNewer,
                   {"target backup/zones/test has snapshots newer than the last common one "
                    "(@now2): @x, @y; run with --force to roll them back"}}},
      {"TargetNewerForceRollsBackAndSendsNext", source(seed_chain()),
       target({seed("now"), seed("now2"), {"x", 301, 30}, {"y", 302, 40}}), kForce,
       ExpectHop{HopKind::kIncremental, "now2", "8550", 103, true, 5, "-i @now2 @8550 (-F)",
                 ""}},
      {"TargetNewerReusedNameRefused", source(seed_chain()),
       target({seed("now"), seed("now2"), {"8550", 303, 30}}), kNoForce,
       ExpectError{Code::kTargetNewer, {"(@now2): @8550;", "--force"}}},
      {"TargetNewerReusedNameForce", source(seed_chain()),
       target({seed("now"), seed("now2"), {"8550", 303, 30}}), kForce,
       ExpectHop{HopKind::kIncremental, "now2", "8550", 103, true, 5, "-i @now2 @8550 (-F)",
                 ""}},
      {"TargetNewerAtSourceHeadRefused", source(seeds({"now", "now2"})),
       target({seed("now"), seed("now2"), {"x", 301, 30}}), kNoForce,
       ExpectError{Code::kTargetNewer, {"(@now2): @x"}}},
      {"TargetNewerAtSourceHeadForceHasNothingToSend", source(seeds({"now", "now2"})),
       target({seed("now"), seed("now2"), {"x", 301, 30}}), kForce,
       ExpectHop{HopKind::kUpToDate, "", "", 0, false, 0, "up to date",
                 "zfs rollback -r backup/zones/test@now2"}},

      // Clones.
      {"CloneOriginOnTarget", clone_source(), missing(/*has_origin=*/true), kNoForce,
       ExpectHop{HopKind::kCloneIncremental, "zones/base@s1", "c1", 501, false, 3,
                 "-i zones/base@s1 @c1", ""}},
      {"CloneOriginNotOnTargetSentFull", clone_source(), missing(/*has_origin=*/false),
       kNoForce,
       ExpectHop{HopKind::kFull, "", "c1", 501, false, 3, "full @c1",
                 "origin zones/base@s1 of clone zones/clone is not on the target, so "
                 "backup/zones/test arrives as a full, independent copy; replicate "
                 "zones/base"}},
      {"CloneAlreadyOnTargetContinues", clone_source(),
       TargetView{kTarget, true, {kCloneSnaps[0]}, true}, kNoForce,
       ExpectHop{HopKind::kIncremental, "c1", "c2", 502, false, 2, "-i @c1 @c2", ""}},

      // Names never match; guids do.
      {"RenamedCommonUsesSourceName", source(seed_chain()),
       target({seed("now"), {"now2-renamed", 102, 20}}), kNoForce,
       ExpectHop{HopKind::kIncremental, "now2", "8550", 103, false, 5, "-i @now2 @8550", ""}},
      {"RenamedCommonNamedInTargetNewer", source(seed_chain()),
       target({{"kept", 102, 20}, {"x", 301, 30}}), kNoForce,
       ExpectError{Code::kTargetNewer, {"(@kept, @now2 on the source): @x"}}},
      {"DuplicateGuidInSourceTakesFirst",
       source({seed("now"), seed("now2"), {"ghost", 102, 25}, seed("8550")}),
       target(seeds({"now"})), kNoForce,
       ExpectHop{HopKind::kIncremental, "now", "now2", 102, false, 2, "-i @now @now2", ""}},
      {"GuidZeroIsAnOrdinaryGuid", source({{"a", 0, 1}, {"b", 5, 2}}),
       target({{"a", 0, 1}}), kNoForce,
       ExpectHop{HopKind::kIncremental, "a", "b", 5, false, 1, "-i @a @b", ""}},
      {"GuidZeroDoesNotMatchOtherGuids", source({{"a", 0, 1}}), target({{"a", 9, 1}}),
       kNoForce, ExpectError{Code::kDiverged, {"none in common"}}},
  };
}

// Failure lines name the row instead of dumping its bytes.
void PrintTo(const PlanCase& c, std::ostream* os) { *os << c.name; }

class PlanTableTest : public ::testing::TestWithParam<PlanCase> {};

void check_hop(const Result<HopPlan>& got, const ExpectHop& want) {
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  const HopPlan& plan = *got;
  EXPECT_EQ(plan.kind, want.kind);
  EXPECT_EQ(plan.from, want.from);
  EXPECT_EQ(plan.to, want.to);
  EXPECT_EQ(plan.to_guid, want.to_guid);
  EXPECT_EQ(plan.force_receive, want.force_receive);
  EXPECT_EQ(plan.remaining, want.remaining);
  EXPECT_EQ(describe(plan), want.description);
  if (want.warning.empty()) {
    EXPECT_TRUE(plan.warnings.empty()) << plan.warnings.front();
  } else {
    ASSERT_EQ(plan.warnings.size(), 1u);
    EXPECT_NE(plan.warnings[0].find(want.warning), std::string::npos) << plan.warnings[0];
  }
}

// from_guid names the snapshot the receiver rolls back to under -F: the source's `from`
// (or the clone's origin), never anything else.
void check_from_guid(const HopPlan& plan, const SourceView& source) {
  switch (plan.kind) {
    case HopKind::kIncremental: {
      uint64_t want = 0;
      for (const auto& s : source.snapshots) {
        if (s.name == plan.from) want = s.guid;
      }
      EXPECT_EQ(plan.from_guid, want);
      break;
    }
    case HopKind::kCloneIncremental:
      EXPECT_EQ(plan.from_guid, source.origin->guid);
      break;
    default:
      EXPECT_EQ(plan.from_guid, 0u);
  }
}

void check_error(const Result<HopPlan>& got, const ExpectError& want) {
  ASSERT_FALSE(got.ok()) << "planned " << describe(*got);
  EXPECT_EQ(got.status().code(), want.code) << got.status().to_string();
  for (const auto& part : want.message_has) {
    EXPECT_NE(got.status().message().find(part), std::string::npos)
        << "missing \"" << part << "\" in: " << got.status().message();
  }
}

TEST_P(PlanTableTest, Plans) {
  const PlanCase& c = GetParam();
  Result<HopPlan> got = plan_next_hop(c.source, c.target, c.options);
  if (const auto* hop = std::get_if<ExpectHop>(&c.expect)) {
    check_hop(got, *hop);
    if (got.ok()) check_from_guid(*got, c.source);
  } else {
    check_error(got, std::get<ExpectError>(c.expect));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, PlanTableTest, ::testing::ValuesIn(plan_cases()),
                         [](const ::testing::TestParamInfo<PlanCase>& info) {
                           return info.param.name;
                         });

// Every message names the datasets involved; the table checks wording, this checks
// that no refusal forgets the target.
TEST(PlanTest, EveryRefusalNamesItsDataset) {
  for (const PlanCase& c : plan_cases()) {
    if (!std::holds_alternative<ExpectError>(c.expect)) continue;
    Result<HopPlan> got = plan_next_hop(c.source, c.target, c.options);
    ASSERT_FALSE(got.ok()) << c.name;
    const std::string msg = got.status().message();
    const std::string& named =
        got.status().code() == Code::kNoSnapshots ? c.source.dataset : c.target.dataset;
    EXPECT_NE(msg.find(named), std::string::npos) << c.name << ": " << msg;
  }
}

TEST(PlanTest, LongListsOfNewerSnapshotsAreShortened) {
  TargetView t = target(seeds({"now"}));
  for (uint64_t i = 0; i < 25; ++i) {
    t.snapshots.push_back({"x" + std::to_string(i), 400 + i, 100 + i});
  }
  Result<HopPlan> got = plan_next_hop(source(seed_chain()), t, kNoForce);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("@x9 and 15 more;"), std::string::npos)
      << got.status().message();
  EXPECT_EQ(got.status().message().find("@x10"), std::string::npos);
}

TEST(PlanTest, DescribeForms) {
  HopPlan p;
  EXPECT_EQ(describe(p), "up to date");
  p = HopPlan{HopKind::kFull, "", "now", 1, 0, false, 7, {}};
  EXPECT_EQ(describe(p), "full @now");
  p = HopPlan{HopKind::kIncremental, "now", "now2", 2, 1, false, 6, {}};
  EXPECT_EQ(describe(p), "-i @now @now2");
  p = HopPlan{HopKind::kCloneIncremental, "pool/base@s1", "c1", 3, 9, false, 1, {}};
  EXPECT_EQ(describe(p), "-i pool/base@s1 @c1");
  p.force_receive = true;
  EXPECT_EQ(describe(p), "-i pool/base@s1 @c1 (-F)");
}

// What a receiver ends up with after `plan` ran: -F rolls back to the common snapshot,
// then the hop's snapshot arrives.
void apply(const HopPlan& plan, const SourceView& src, TargetView& tgt) {
  auto sent = std::find_if(src.snapshots.begin(), src.snapshots.end(),
                           [&](const SnapshotVersion& s) { return s.guid == plan.to_guid; });
  ASSERT_NE(sent, src.snapshots.end());
  if (plan.kind == HopKind::kIncremental && plan.force_receive) {
    auto common = std::find_if(src.snapshots.begin(), src.snapshots.end(),
                               [&](const SnapshotVersion& s) { return s.name == plan.from; });
    ASSERT_NE(common, src.snapshots.end());
    std::erase_if(tgt.snapshots, [&](const SnapshotVersion& s) {
      return s.createtxg > common->createtxg;
    });
  }
  if (plan.kind != HopKind::kIncremental) tgt.snapshots.clear();
  tgt.exists = true;
  tgt.snapshots.push_back(*sent);
}

// Plans and applies hops until up to date, like the sender does; `before_hop(n, src)`
// may change the source listing before hop n (0-based) is planned.
template <typename Hook>
std::vector<std::string> sync(SourceView src, TargetView tgt, PlanOptions options,
                              Hook before_hop) {
  std::vector<std::string> hops;
  for (size_t n = 0; n < 50; ++n) {
    before_hop(n, src);
    Result<HopPlan> plan = plan_next_hop(src, tgt, options);
    EXPECT_TRUE(plan.ok()) << plan.status().to_string();
    if (!plan.ok() || plan->kind == HopKind::kUpToDate) return hops;
    hops.push_back(describe(*plan));
    apply(*plan, src, tgt);
  }
  ADD_FAILURE() << "no end in sight after 50 hops";
  return hops;
}

std::vector<std::string> sync(SourceView src, TargetView tgt, PlanOptions options = {}) {
  return sync(std::move(src), std::move(tgt), options, [](size_t, SourceView&) {});
}

TEST(PlanTest, WalksTheSeedChainOneSnapshotAtATime) {
  EXPECT_EQ(sync(source(seed_shuffled()), missing()),
            (std::vector<std::string>{"full @now", "-i @now @now2", "-i @now2 @8550",
                                      "-i @8550 @18569", "-i @18569 @20392",
                                      "-i @20392 @30577", "-i @30577 @4387"}));
}

TEST(PlanTest, RemainingCountsDownHopByHop) {
  SourceView src = source(seed_chain());
  TargetView tgt = missing();
  for (size_t want = 7; want > 0; --want) {
    Result<HopPlan> plan = plan_next_hop(src, tgt, {});
    ASSERT_TRUE(plan.ok()) << plan.status().to_string();
    EXPECT_EQ(plan->remaining, want) << describe(*plan);
    apply(*plan, src, tgt);
  }
  Result<HopPlan> done = plan_next_hop(src, tgt, {});
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->kind, HopKind::kUpToDate);
  EXPECT_EQ(done->remaining, 0u);
}

TEST(PlanTest, SnapshotDestroyedMidSyncIsSkipped) {
  auto destroy_18569_after_three_hops = [](size_t n, SourceView& src) {
    if (n != 3) return;
    std::erase_if(src.snapshots, [](const SnapshotVersion& s) { return s.name == "18569"; });
  };
  EXPECT_EQ(sync(source(seed_chain()), missing(), {}, destroy_18569_after_three_hops),
            (std::vector<std::string>{"full @now", "-i @now @now2", "-i @now2 @8550",
                                      "-i @8550 @20392", "-i @20392 @30577",
                                      "-i @30577 @4387"}));
}

TEST(PlanTest, SnapshotCreatedMidSyncIsPickedUp) {
  auto snapshot_after_two_hops = [](size_t n, SourceView& src) {
    if (n == 2) src.snapshots.push_back({"late", 999, 80});
  };
  std::vector<std::string> hops =
      sync(source(seed_chain()), missing(), {}, snapshot_after_two_hops);
  ASSERT_EQ(hops.size(), 8u);
  EXPECT_EQ(hops.back(), "-i @4387 @late");
}

TEST(PlanTest, CloneSyncStartsFromTheOrigin) {
  EXPECT_EQ(sync(clone_source(), missing(/*has_origin=*/true)),
            (std::vector<std::string>{"-i zones/base@s1 @c1", "-i @c1 @c2", "-i @c2 @c3"}));
}

TEST(PlanTest, ForcedSyncRollsBackOnceThenContinues) {
  TargetView tgt = target({seed("now"), {"x", 301, 30}});
  EXPECT_EQ(sync(source(seeds({"now", "now2", "8550"})), tgt, kForce),
            (std::vector<std::string>{"-i @now @now2 (-F)", "-i @now2 @8550"}));
}

}  // namespace
}  // namespace zps
