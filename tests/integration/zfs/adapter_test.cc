// The zfs adapter against real ZFS (zfs-fuse here): listings, probes, errors.
#include "shared/zfs.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/support/local_replicator.h"
#include "tests/support/zfs_rig.h"

namespace zps::test {
namespace {

class ZfsAdapterTest : public ZfsTest {
 protected:
  void SetUp() override {
    ZfsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    pool_ = create_pool("adapter");
    log_.attach(zfs_);
  }

  std::string pool_;
  Zfs zfs_;
  ArgvLog log_;
};

TEST_F(ZfsAdapterTest, ProbeMatchesWhatZfsAccepts) {
  const ZfsCapabilities& caps = zfs_.capabilities();
  // Ask zfs directly whether the OpenZFS forms work, and compare with the probe.
  bool list_p = rig().zfs({"list", "-Hp", "-o", "name", "-d", "0", pool_}).ok();
  bool get_t = rig().zfs({"get", "-H", "-t", "filesystem", "-o", "name", "name", pool_}).ok();
  EXPECT_EQ(caps.list_parsable, list_p);
  EXPECT_EQ(caps.get_type_filter, get_t);
  std::cerr << "capabilities: list_parsable=" << caps.list_parsable
            << " get_type_filter=" << caps.get_type_filter
            << " resume_tokens=" << caps.resume_tokens << " bookmarks=" << caps.bookmarks
            << " holds=" << caps.holds << " send_estimate=" << caps.send_estimate
            << " recv_no_mount=" << caps.recv_no_mount << "\n";
}

TEST_F(ZfsAdapterTest, ProbeRunsOnlyUsageCommandsAndOnlyOnce) {
  zfs_.capabilities();
  zfs_.capabilities();
  std::vector<std::vector<std::string>> argvs = log_.all();
  ASSERT_EQ(argvs.size(), 2u);
  EXPECT_EQ(argvs[0], (std::vector<std::string>{"zfs"}));
  EXPECT_EQ(argvs[1], (std::vector<std::string>{"zfs", "holds"}));
}

TEST_F(ZfsAdapterTest, ListsSnapshotsInCreationOrderWithExactGuids) {
  const std::string ds = pool_ + "/data";
  create_dataset(ds);
  create_dataset(ds + "/child");
  for (const char* name : {"zeta", "alpha", "8550", "4387"}) {
    write_file(ds, std::string("file-") + name, name);
    snapshot(ds, name);
  }
  snapshot(ds + "/child", "c1");  // must not show up: it belongs to the child

  Result<std::vector<SnapshotVersion>> listed = zfs_.list_snapshots(ds);
  ASSERT_TRUE(listed.ok()) << listed.status().to_string();
  std::vector<SnapshotVersion> expected = snapshots(ds);
  ASSERT_EQ(listed->size(), 4u);
  ASSERT_EQ(expected.size(), 4u);
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ((*listed)[i].name, expected[i].name);
    EXPECT_EQ((*listed)[i].guid, expected[i].guid);
    EXPECT_EQ((*listed)[i].createtxg, expected[i].createtxg);
    if (i > 0) {
      EXPECT_LT((*listed)[i - 1].createtxg, (*listed)[i].createtxg);
    }
  }
  EXPECT_EQ((*listed)[0].name, "zeta");
  EXPECT_EQ((*listed)[3].name, "4387");
}

TEST_F(ZfsAdapterTest, DatasetWithoutSnapshotsListsNone) {
  create_dataset(pool_ + "/empty");
  Result<std::vector<SnapshotVersion>> listed = zfs_.list_snapshots(pool_ + "/empty");
  ASSERT_TRUE(listed.ok()) << listed.status().to_string();
  EXPECT_TRUE(listed->empty());
}

TEST_F(ZfsAdapterTest, ListsDescendantsWithTypeAndOrigin) {
  create_dataset(pool_ + "/a");
  create_dataset(pool_ + "/a/b");
  snapshot(pool_ + "/a", "s1");
  zfs({"clone", pool_ + "/a@s1", pool_ + "/c"});

  Result<std::vector<DatasetInfo>> list = zfs_.list_descendants(pool_);
  ASSERT_TRUE(list.ok()) << list.status().to_string();
  std::vector<std::string> names;
  for (const DatasetInfo& d : *list) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{pool_, pool_ + "/a", pool_ + "/a/b", pool_ + "/c"}));
  for (const DatasetInfo& d : *list) {
    EXPECT_EQ(d.type, "filesystem") << d.name;
    if (d.name == pool_ + "/c") {
      ASSERT_TRUE(d.origin.has_value());
      EXPECT_EQ(*d.origin, pool_ + "/a@s1");
    } else {
      EXPECT_FALSE(d.origin.has_value()) << d.name;
    }
  }
}

TEST_F(ZfsAdapterTest, ExistsOriginAndGuid) {
  create_dataset(pool_ + "/a");
  snapshot(pool_ + "/a", "s1");
  zfs({"clone", pool_ + "/a@s1", pool_ + "/c"});

  EXPECT_TRUE(zfs_.exists(pool_ + "/a").value());
  EXPECT_TRUE(zfs_.exists(pool_ + "/a@s1").value());
  EXPECT_FALSE(zfs_.exists(pool_ + "/nope").value());
  EXPECT_FALSE(zfs_.exists(pool_ + "/a@nope").value());

  EXPECT_FALSE(zfs_.origin(pool_ + "/a").value().has_value());
  EXPECT_EQ(zfs_.origin(pool_ + "/c").value(), pool_ + "/a@s1");

  EXPECT_EQ(zfs_.guid(pool_ + "/a@s1").value(), guid_of(pool_ + "/a@s1"));
  EXPECT_EQ(zfs_.guid(pool_ + "/a").value(), guid_of(pool_ + "/a"));
}

TEST_F(ZfsAdapterTest, FindsSnapshotByGuidBelowADataset) {
  create_dataset(pool_ + "/a");
  create_dataset(pool_ + "/a/b");
  snapshot(pool_ + "/a/b", "deep");
  uint64_t guid = guid_of(pool_ + "/a/b@deep");

  Result<std::optional<std::string>> found = zfs_.find_snapshot_by_guid(pool_, guid);
  ASSERT_TRUE(found.ok()) << found.status().to_string();
  EXPECT_EQ(found->value_or(""), pool_ + "/a/b@deep");
  // A dataset's own guid is not a snapshot's.
  EXPECT_FALSE(zfs_.find_snapshot_by_guid(pool_, guid_of(pool_ + "/a")).value().has_value());
}

TEST_F(ZfsAdapterTest, MissingDatasetIsNotFoundAndNamed) {
  const std::string missing = pool_ + "/nope";
  for (const Status& s : {zfs_.list_snapshots(missing).status(),
                          zfs_.list_descendants(missing).status(),
                          zfs_.origin(missing).status(), zfs_.guid(missing + "@x").status(),
                          zfs_.rollback(missing + "@x")}) {
    EXPECT_EQ(s.code(), Code::kNotFound) << s.to_string();
    EXPECT_NE(s.message().find(missing), std::string::npos) << s.message();
    // zfs's own words travel with the error.
    EXPECT_NE(s.message().find("does not exist"), std::string::npos) << s.message();
  }
}

TEST_F(ZfsAdapterTest, BadNamesAreRefusedBeforeAnyCommandRuns) {
  zfs_.capabilities();  // the probe is allowed to run
  log_.clear();
  for (const std::string& bad : {std::string("-o"), pool_ + "/a b", pool_ + "/$(reboot)",
                                 pool_ + "//x", pool_ + "/../x", std::string(300, 'a')}) {
    EXPECT_EQ(zfs_.list_snapshots(bad).status().code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(zfs_.exists(bad).status().code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(zfs_.create_unmounted(bad).code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(zfs_.start_recv(RecvSpec{bad, false}).status().code(), Code::kInvalidArgument);
    EXPECT_EQ(zfs_.start_send(SendSpec{std::nullopt, bad + "@s"}).status().code(),
              Code::kInvalidArgument);
  }
  EXPECT_EQ(zfs_.start_send(SendSpec{pool_ + "/a@-I", pool_ + "/a@s2"}).status().code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(log_.all().empty()) << "ran " << format_argv(log_.all().front());
}

TEST_F(ZfsAdapterTest, CreateUnmountedCreatesEachMissingComponentUnmounted) {
  const std::string leaf = pool_ + "/recv/agent1/zones";
  ASSERT_TRUE(zfs_.create_unmounted(leaf).ok());
  for (const std::string& ds : {pool_ + "/recv", pool_ + "/recv/agent1", leaf}) {
    EXPECT_EQ(zfs({"get", "-H", "-o", "value", "canmount", ds}), "off\n") << ds;
    EXPECT_EQ(zfs({"get", "-H", "-o", "value", "mounted", ds}), "no\n") << ds;
  }
  // Again: nothing to do, no error.
  EXPECT_TRUE(zfs_.create_unmounted(leaf).ok());
  // A pool is never created.
  Status s = zfs_.create_unmounted("zpstnopool/x");
  EXPECT_EQ(s.code(), Code::kNotFound) << s.to_string();
}

TEST_F(ZfsAdapterTest, PoolsReportFreeBytes) {
  Result<std::vector<PoolInfo>> pools = zfs_.pools();
  ASSERT_TRUE(pools.ok()) << pools.status().to_string();
  auto it = std::find_if(pools->begin(), pools->end(),
                         [&](const PoolInfo& p) { return p.name == pool_; });
  ASSERT_NE(it, pools->end());
  EXPECT_GT(it->free_bytes, 100ull << 20);
  EXPECT_LT(it->free_bytes, 256ull << 20);
}

TEST_F(ZfsAdapterTest, SendArgvIsFullOrSinglePairOnly) {
  Result<std::vector<std::string>> full = zfs_.send_argv({std::nullopt, "p/a@s1"});
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(*full, (std::vector<std::string>{"zfs", "send", "p/a@s1"}));
  Result<std::vector<std::string>> incr = zfs_.send_argv({"p/a@s1", "p/a@s2"});
  ASSERT_TRUE(incr.ok());
  EXPECT_EQ(*incr, (std::vector<std::string>{"zfs", "send", "-i", "p/a@s1", "p/a@s2"}));
  EXPECT_FALSE(zfs_.send_argv({"p/a@s1", "p/a@s1"}).ok());
  Result<std::vector<std::string>> recv = zfs_.recv_argv({"q/x", true});
  ASSERT_TRUE(recv.ok());
  EXPECT_EQ(*recv, (std::vector<std::string>{"zfs", "recv", "-F", "q/x"}));
}

TEST_F(ZfsAdapterTest, RollbackDestroysLaterSnapshots) {
  const std::string ds = pool_ + "/a";
  create_dataset(ds);
  snapshot(ds, "s1");
  write_file(ds, "f", "after s1");
  snapshot(ds, "s2");
  ASSERT_TRUE(zfs_.rollback(ds + "@s1").ok());
  std::vector<SnapshotVersion> left = snapshots(ds);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].name, "s1");
}

TEST_F(ZfsAdapterTest, FailedReceiveCarriesZfsStderr) {
  create_dataset(pool_ + "/a");
  snapshot(pool_ + "/a", "s1");
  // The target's parent does not exist: zfs recv fails and says why.
  auto recv = zfs_.start_recv({pool_ + "/missing/parent/a", false});
  ASSERT_TRUE(recv.ok()) << recv.status().to_string();
  auto send = zfs_.start_send({std::nullopt, pool_ + "/a@s1"});
  ASSERT_TRUE(send.ok()) << send.status().to_string();
  uint64_t bytes = 0;
  pump_stream((*send)->stdout_fd(), (*recv)->stdin_fd(), &bytes);
  (*recv)->close_stdin();
  ExitStatus recv_status = (*recv)->wait();
  (*send)->kill();
  (*send)->wait();
  EXPECT_FALSE(recv_status.ok());
  EXPECT_NE((*recv)->stderr_text().find("does not exist"), std::string::npos)
      << (*recv)->stderr_text();
}

}  // namespace
}  // namespace zps::test
