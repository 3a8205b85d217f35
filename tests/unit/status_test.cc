#include "shared/status.h"

#include <gtest/gtest.h>

namespace zps {
namespace {

TEST(StatusTest, CodeNamesRoundTrip) {
  for (Code c : {Code::kOk, Code::kInvalidArgument, Code::kLockHeld, Code::kDiverged,
                 Code::kTargetNewer, Code::kZfsFailed, Code::kBusy, Code::kInternal}) {
    EXPECT_EQ(code_from_name(code_name(c)), c) << code_name(c);
  }
  EXPECT_EQ(code_from_name("no such code"), Code::kInternal);
}

TEST(StatusTest, RefusalsAreTheCodesThatChangeNothing) {
  EXPECT_TRUE(is_refusal(Code::kLockHeld));
  EXPECT_TRUE(is_refusal(Code::kDiverged));
  EXPECT_TRUE(is_refusal(Code::kInvalidArgument));
  EXPECT_FALSE(is_refusal(Code::kZfsFailed));
  EXPECT_FALSE(is_refusal(Code::kTimeout));
}

TEST(StatusTest, ResultHoldsValueOrStatus) {
  Result<int> good = 7;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  Result<int> bad = Status(Code::kNotFound, "dataset pool/x does not exist");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kNotFound);
  EXPECT_EQ(bad.status().with_context("listing").message(),
            "listing: dataset pool/x does not exist");
}

}  // namespace
}  // namespace zps
