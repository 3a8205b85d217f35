// The zfs adapter's parsers, fed with output recorded from zfs-fuse 0.7.0 (Debian
// bookworm) unless a test says otherwise.
#include "shared/zfs_parse.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "shared/zfs.h"
#include "tests/support/paths.h"
#include "tests/support/temp_dir.h"

namespace zps {
namespace {

std::string read_data(const std::string& name) {
  std::ifstream in(test::source_path("tests/unit/data/" + name), std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// `zfs get -Hp -d 1 -o name,property,value guid,createtxg zpsexpa/test`: the dataset
// itself comes first, its child zpsexpa/test/child last, snapshots in between.
constexpr std::string_view kGetDepth1 =
    "zpsexpa/test\tguid\t8781317790212721555\n"
    "zpsexpa/test\tcreatetxg\t7\n"
    "zpsexpa/test@now\tguid\t14745211642813645384\n"
    "zpsexpa/test@now\tcreatetxg\t12\n"
    "zpsexpa/test@now2\tguid\t6676426444209699173\n"
    "zpsexpa/test@now2\tcreatetxg\t17\n"
    "zpsexpa/test/child\tguid\t14621728595522432362\n"
    "zpsexpa/test/child\tcreatetxg\t19\n";

TEST(ParseSnapshotPropertiesTest, KeepsOnlyTheDatasetsOwnSnapshots) {
  auto snaps = parse_snapshot_properties("zpsexpa/test", kGetDepth1);
  ASSERT_TRUE(snaps.ok()) << snaps.status().to_string();
  ASSERT_EQ(snaps->size(), 2u);
  EXPECT_EQ((*snaps)[0].name, "now");
  EXPECT_EQ((*snaps)[0].guid, 14745211642813645384ull);
  EXPECT_EQ((*snaps)[0].createtxg, 12u);
  EXPECT_EQ((*snaps)[1].name, "now2");
  EXPECT_EQ((*snaps)[1].guid, 6676426444209699173ull);
  EXPECT_EQ((*snaps)[1].createtxg, 17u);
}

TEST(ParseSnapshotPropertiesTest, ChildSnapshotsAndPrefixSiblingsAreNotOurs) {
  // A child's snapshot ("zpsexpa/test/child@c") and a sibling whose name merely starts
  // with ours ("zpsexpa/testing@x") must not be taken for snapshots of zpsexpa/test.
  constexpr std::string_view text =
      "zpsexpa/test@s1\tguid\t11\n"
      "zpsexpa/test@s1\tcreatetxg\t5\n"
      "zpsexpa/test/child@c\tguid\t22\n"
      "zpsexpa/test/child@c\tcreatetxg\t6\n"
      "zpsexpa/testing@x\tguid\t33\n"
      "zpsexpa/testing@x\tcreatetxg\t7\n";
  auto snaps = parse_snapshot_properties("zpsexpa/test", text);
  ASSERT_TRUE(snaps.ok()) << snaps.status().to_string();
  ASSERT_EQ(snaps->size(), 1u);
  EXPECT_EQ((*snaps)[0].name, "s1");
}

TEST(ParseSnapshotPropertiesTest, OrdersByCreatetxgNotByName) {
  // The seed's names: "8550" sorts after "4387" by name but was created before it.
  constexpr std::string_view text =
      "zones/test@4387\tguid\t7\n"
      "zones/test@4387\tcreatetxg\t90\n"
      "zones/test@now\tguid\t1\n"
      "zones/test@now\tcreatetxg\t10\n"
      "zones/test@8550\tcreatetxg\t30\n"
      "zones/test@8550\tguid\t3\n";
  auto snaps = parse_snapshot_properties("zones/test", text);
  ASSERT_TRUE(snaps.ok()) << snaps.status().to_string();
  ASSERT_EQ(snaps->size(), 3u);
  EXPECT_EQ((*snaps)[0].name, "now");
  EXPECT_EQ((*snaps)[1].name, "8550");
  EXPECT_EQ((*snaps)[2].name, "4387");
}

TEST(ParseSnapshotPropertiesTest, DatasetWithoutSnapshotsGivesEmptyList) {
  auto snaps = parse_snapshot_properties(
      "zpsexpa", "zpsexpa\tguid\t3022096461414649029\nzpsexpa\tcreatetxg\t1\n");
  ASSERT_TRUE(snaps.ok());
  EXPECT_TRUE(snaps->empty());
}

TEST(ParseSnapshotPropertiesTest, HumanReadableValuesAreRefused) {
  auto snaps = parse_snapshot_properties("p/a", "p/a@s\tguid\t7.99E\np/a@s\tcreatetxg\t3\n");
  ASSERT_FALSE(snaps.ok());
  EXPECT_EQ(snaps.status().code(), Code::kProtocol);
  EXPECT_NE(snaps.status().message().find("7.99E"), std::string::npos);
}

TEST(ParseSnapshotPropertiesTest, MissingPropertyIsAnError) {
  auto snaps = parse_snapshot_properties("p/a", "p/a@s\tguid\t7\n");
  ASSERT_FALSE(snaps.ok());
  EXPECT_EQ(snaps.status().code(), Code::kProtocol);
}

TEST(ParseSnapshotPropertiesTest, MalformedLineIsAnError) {
  auto snaps = parse_snapshot_properties("p/a", "p/a@s guid 7\n");
  ASSERT_FALSE(snaps.ok());
  EXPECT_EQ(snaps.status().code(), Code::kProtocol);
}

TEST(ParseSnapshotPropertiesTest, GuidAboveInt64) {
  auto snaps = parse_snapshot_properties(
      "p/a", "p/a@s\tguid\t18446744073709551615\np/a@s\tcreatetxg\t3\n");
  ASSERT_TRUE(snaps.ok());
  EXPECT_EQ((*snaps)[0].guid, 18446744073709551615ull);
  auto overflow = parse_snapshot_properties(
      "p/a", "p/a@s\tguid\t18446744073709551616\np/a@s\tcreatetxg\t3\n");
  EXPECT_FALSE(overflow.ok());
}

// `zfs list -H -t snapshot -o name,guid,createtxg -r zpsexpa` on zfs-fuse: without -p
// (which it lacks) guids are abbreviated and must never be parsed.
constexpr std::string_view kListWithoutP =
    "zpsexpa/cl@c1\t15.0E\t31\n"
    "zpsexpa/test@now\t12.8E\t12\n"
    "zpsexpa/test@now2\t5.79E\t17\n"
    "zpsexpa/test/child@c\t12.3E\t24\n";

TEST(ParseSnapshotListTest, AbbreviatedGuidsAreRefused) {
  auto snaps = parse_snapshot_list("zpsexpa/test", kListWithoutP);
  ASSERT_FALSE(snaps.ok());
  EXPECT_EQ(snaps.status().code(), Code::kProtocol);
  EXPECT_NE(snaps.status().message().find("12.8E"), std::string::npos);
}

TEST(ParseSnapshotListTest, OpenZfsParsableForm) {
  // `zfs list -Hp -t snapshot -d 1 -o name,guid,createtxg -s createtxg zones/test`
  constexpr std::string_view text =
      "zones/test@now\t14745211642813645384\t12\n"
      "zones/test@now2\t6676426444209699173\t17\n";
  auto snaps = parse_snapshot_list("zones/test", text);
  ASSERT_TRUE(snaps.ok()) << snaps.status().to_string();
  ASSERT_EQ(snaps->size(), 2u);
  EXPECT_EQ((*snaps)[1].name, "now2");
  EXPECT_EQ((*snaps)[1].guid, 6676426444209699173ull);
}

TEST(ParseDatasetListTest, ClonesCarryTheirOrigin) {
  // `zfs list -H -r -t filesystem,volume -o name,type,origin zpsexpb`
  constexpr std::string_view text =
      "zpsexpb\tfilesystem\t-\n"
      "zpsexpb/x\tfilesystem\t-\n"
      "zpsexpb/x/cl\tfilesystem\tzpsexpb/x/test@now2\n"
      "zpsexpb/x/test\tfilesystem\t-\n";
  auto list = parse_dataset_list(text);
  ASSERT_TRUE(list.ok()) << list.status().to_string();
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ((*list)[0].name, "zpsexpb");
  EXPECT_FALSE((*list)[0].origin.has_value());
  EXPECT_EQ((*list)[2].name, "zpsexpb/x/cl");
  EXPECT_EQ((*list)[2].type, "filesystem");
  ASSERT_TRUE((*list)[2].origin.has_value());
  EXPECT_EQ(*(*list)[2].origin, "zpsexpb/x/test@now2");
}

TEST(ParseDatasetListTest, SnapshotsAreSkipped) {
  auto list = parse_dataset_list("p\tfilesystem\t-\np@s\tsnapshot\t-\np/v\tvolume\t-\n");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].type, "volume");
}

TEST(ParseNumberTest, SingleValue) {
  // `zfs get -Hp -o value guid zpsexpa/test@now`
  auto v = parse_number("14745211642813645384\n");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 14745211642813645384ull);
  EXPECT_FALSE(parse_number("-\n").ok());
  EXPECT_FALSE(parse_number("").ok());
  EXPECT_FALSE(parse_number("1\n2\n").ok());
}

TEST(ParseNameValuesTest, RecursiveGuids) {
  // `zfs get -Hp -r -o name,value guid zpsexpa`
  constexpr std::string_view text =
      "zpsexpa\t3022096461414649029\n"
      "zpsexpa/cl\t12045525614775767742\n"
      "zpsexpa/cl@c1\t17298040966828841278\n"
      "zpsexpa/test@now\t14745211642813645384\n";
  auto values = parse_name_values(text);
  ASSERT_TRUE(values.ok()) << values.status().to_string();
  ASSERT_EQ(values->size(), 4u);
  EXPECT_EQ((*values)[2].name, "zpsexpa/cl@c1");
  EXPECT_EQ((*values)[2].value, 17298040966828841278ull);
}

TEST(ParseNameValuesTest, AvailableBytes) {
  // `zfs get -Hp -o name,value available zpsexpa zpsexpb`
  auto values = parse_name_values("zpsexpa\t227467264\nzpsexpb\t226914304\n");
  ASSERT_TRUE(values.ok());
  EXPECT_EQ((*values)[1].value, 226914304u);
}

TEST(ParseCapabilitiesTest, ZfsFuseHasNoneOfTheOpenZfsExtras) {
  ZfsCapabilities caps = parse_capabilities(read_data("zfs-fuse-0.7.0-usage.txt"),
                                            read_data("zfs-fuse-0.7.0-holds.txt"));
  EXPECT_FALSE(caps.list_parsable);
  EXPECT_FALSE(caps.get_type_filter);
  EXPECT_FALSE(caps.resume_tokens);
  EXPECT_FALSE(caps.bookmarks);
  EXPECT_FALSE(caps.holds);  // listed in its usage, but the helper it needs is missing
  EXPECT_FALSE(caps.send_estimate);
  EXPECT_FALSE(caps.recv_no_mount);
}

TEST(ParseCapabilitiesTest, OpenZfsHasThemAll) {
  ZfsCapabilities caps = parse_capabilities(read_data("openzfs-2.2-usage-excerpt.txt"),
                                            read_data("openzfs-2.2-holds.txt"));
  EXPECT_TRUE(caps.list_parsable);
  EXPECT_TRUE(caps.get_type_filter);
  EXPECT_TRUE(caps.resume_tokens);
  EXPECT_TRUE(caps.bookmarks);
  EXPECT_TRUE(caps.holds);
  EXPECT_TRUE(caps.send_estimate);
  EXPECT_TRUE(caps.recv_no_mount);
}

TEST(ParseCapabilitiesTest, RecordedUsageIsPresent) {
  // Guards the two tests above against an empty fixture passing by accident.
  EXPECT_NE(read_data("zfs-fuse-0.7.0-usage.txt").find("send [-RDp]"), std::string::npos);
  EXPECT_NE(read_data("openzfs-2.2-usage-excerpt.txt").find("list [-Hp]"), std::string::npos);
}

TEST(MissingDatasetTest, RecognisesZfsWording) {
  EXPECT_EQ(missing_dataset("cannot open 'zpsexpa/nope': dataset does not exist\n"),
            "zpsexpa/nope");
  EXPECT_EQ(missing_dataset("cannot open 'zpsexpa/test@nope': dataset does not exist\n"),
            "zpsexpa/test@nope");
  // `zfs send` of a snapshot that does not exist.
  EXPECT_EQ(missing_dataset("WARNING: could not send zpsexpa/test@nope: does not exist\n"),
            "zpsexpa/test@nope");
}

TEST(UsablePoolsTest, OnlyPoolsWhoseRootDatasetCanBeReadAreKept) {
  EXPECT_EQ(usable_pools("tank\tONLINE\nold\tFAULTED\nhalf\tDEGRADED\ngone\tUNAVAIL\n"
                         "susp\tSUSPENDED\nout\tOFFLINE\n"),
            (std::vector<std::string>{"tank", "half"}));
  EXPECT_TRUE(usable_pools("no pools available\n").empty());
  EXPECT_TRUE(usable_pools("").empty());
  EXPECT_TRUE(usable_pools("-bad\tONLINE\nx\n").empty());
}

// A faulted pool beside a healthy one must not hide the healthy one's free space.
TEST(PoolsTest, AFaultedPoolIsLeftOutInsteadOfFailingTheListing) {
  test::TempDir dir;
  const std::string zpool = dir.script(
      "zpool", "[ \"$*\" = 'list -H -o name,health' ] || exit 1\n"
               "printf 'old\\tFAULTED\\ntank\\tONLINE\\n'\n");
  const std::string zfs = dir.script(
      "zfs", "[ \"$*\" = 'get -Hp -o name,value available tank' ] || "
             "{ echo \"cannot open: $*\" >&2; exit 1; }\n"
             "printf 'tank\\t4096\\n'\n");
  Zfs adapter(zfs, zpool);
  auto pools = adapter.pools();
  ASSERT_TRUE(pools.ok()) << pools.status().to_string();
  ASSERT_EQ(pools->size(), 1u);
  EXPECT_EQ((*pools)[0].name, "tank");
  EXPECT_EQ((*pools)[0].free_bytes, 4096u);
}

TEST(MissingDatasetTest, OtherErrorsAreNotMissingDatasets) {
  EXPECT_FALSE(missing_dataset("cannot create 'zpsexpa/test': dataset already exists\n"));
  EXPECT_FALSE(missing_dataset(
      "cannot receive incremental stream: most recent snapshot of zpsexpb/x/test does not\n"
      "match incremental source\n"));
  EXPECT_FALSE(missing_dataset(
      "cannot receive new filesystem stream: destination 'zpsexpb/x/test' exists\n"
      "must specify -F to overwrite it\n"));
  EXPECT_FALSE(missing_dataset(""));
}

// The adapter itself, with a stand-in for OpenZFS's zfs that answers from the recorded
// usage: the probe must find the OpenZFS forms and the listings must use them.
class OpenZfsAdapterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string data = test::source_path("tests/unit/data");
    fake_ = dir_.script(
        "zfs", "case \"$*\" in\n"
               "  '') cat '" + data + "/openzfs-2.2-usage-excerpt.txt' >&2; exit 2;;\n"
               "  holds) cat '" + data + "/openzfs-2.2-holds.txt' >&2; exit 2;;\n"
               "  'list -Hp -t snapshot -d 1 -o name,guid,createtxg -s createtxg tank/a')\n"
               "    printf 'tank/a@s1\\t11\\t5\\ntank/a@s2\\t22\\t9\\n';;\n"
               "  'list -Hp -r -t snapshot -o name,guid tank')\n"
               "    printf 'tank/a@s1\\t11\\ntank/b@x\\t33\\n';;\n"
               "  *) echo \"fake zfs: unexpected arguments: $*\" >&2; exit 1;;\n"
               "esac\n");
  }

  test::TempDir dir_;
  std::string fake_;
};

TEST_F(OpenZfsAdapterTest, ProbeFindsOpenZfsFormsAndListingsUseThem) {
  Zfs zfs(fake_);
  std::vector<std::vector<std::string>> argvs;
  zfs.set_observer([&](const std::vector<std::string>& argv) { argvs.push_back(argv); });

  const ZfsCapabilities& caps = zfs.capabilities();
  EXPECT_TRUE(caps.list_parsable);
  EXPECT_TRUE(caps.holds);

  auto snaps = zfs.list_snapshots("tank/a");
  ASSERT_TRUE(snaps.ok()) << snaps.status().to_string();
  ASSERT_EQ(snaps->size(), 2u);
  EXPECT_EQ((*snaps)[1].name, "s2");
  EXPECT_EQ((*snaps)[1].guid, 22u);

  auto found = zfs.find_snapshot_by_guid("tank", 33);
  ASSERT_TRUE(found.ok()) << found.status().to_string();
  EXPECT_EQ(found->value_or(""), "tank/b@x");

  ASSERT_EQ(argvs.size(), 4u);  // usage, holds, one listing each
  EXPECT_EQ(argvs[2][1], "list");
}

TEST_F(OpenZfsAdapterTest, ZfsStderrTravelsInTheError) {
  Zfs zfs(fake_);
  auto guid = zfs.guid("tank/a@s1");  // the stand-in knows no `get`
  ASSERT_FALSE(guid.ok());
  EXPECT_EQ(guid.status().code(), Code::kZfsFailed);
  EXPECT_NE(guid.status().message().find("fake zfs: unexpected arguments: get"),
            std::string::npos)
      << guid.status().message();
}

}  // namespace
}  // namespace zps
