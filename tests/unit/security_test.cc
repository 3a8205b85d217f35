// The security building blocks: key files, the authorized-keys file, the loopback rule
// for plaintext, ZAP request parsing, and real CURVE handshakes on TCP loopback judged by
// a ZapHandler (control socket: authorized keys; data socket: one registered key per
// session domain, with a real pipe transfer going through while strangers are refused).
#include "shared/security.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>
#include <sstream>

#include "ctl/app.h"
#include "shared/pipe.h"
#include "tests/support/temp_dir.h"

namespace zps {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test::TempDir;

void write_text(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

KeyPair new_keys() {
  auto k = generate_keypair();
  EXPECT_TRUE(k.ok()) << k.status().to_string();
  return k.ok() ? *k : KeyPair{};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- Key files ------------------------------------------------------------------------

TEST(KeyFiles, GeneratedPairsAreValidAndDistinct) {
  KeyPair a = new_keys();
  KeyPair b = new_keys();
  EXPECT_TRUE(validate_z85_key(a.public_z85).ok());
  EXPECT_TRUE(validate_z85_key(a.secret_z85).ok());
  EXPECT_NE(a.public_z85, b.public_z85);
  EXPECT_NE(a.secret_z85, b.secret_z85);
  auto raw = z85_to_binary(a.public_z85);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->size(), kCurveKeyBytes);
  EXPECT_EQ(binary_to_z85(*raw).value(), a.public_z85);
}

TEST(KeyFiles, WritesSecretFile0600AndPublicFile0644) {
  TempDir dir;
  const mode_t old_umask = ::umask(0);  // the modes must not depend on the umask
  KeyPair keys = new_keys();
  const std::string prefix = dir.file("node1");
  Status st = write_keypair(prefix, keys);
  ::umask(old_umask);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(mode_of(prefix + ".key"), 0600u);
  EXPECT_EQ(mode_of(prefix + ".pub"), 0644u);

  auto loaded = load_secret_key(prefix + ".key");
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->public_z85, keys.public_z85);
  EXPECT_EQ(loaded->secret_z85, keys.secret_z85);
  EXPECT_EQ(load_public_key(prefix + ".pub").value(), keys.public_z85);
  EXPECT_EQ(load_public_key(prefix + ".key").value(), keys.public_z85);  // public part only
  EXPECT_EQ(load_public_key(keys.public_z85).value(), keys.public_z85);  // a literal key

  std::ifstream pub(prefix + ".pub");
  const std::string pub_text((std::istreambuf_iterator<char>(pub)), {});
  EXPECT_TRUE(contains(pub_text, keys.public_z85));
  EXPECT_FALSE(contains(pub_text, keys.secret_z85));
  EXPECT_FALSE(contains(pub_text, "secret-key"));
}

TEST(KeyFiles, NeverOverwrites) {
  TempDir dir;
  const std::string prefix = dir.file("n");
  write_text(prefix + ".pub", "mine\n", 0644);
  Status st = write_keypair(prefix, new_keys());
  EXPECT_EQ(st.code(), Code::kRefused) << st.to_string();
  EXPECT_TRUE(contains(st.message(), "already exists"));
  EXPECT_FALSE(fs::exists(prefix + ".key"));  // no half pair left behind

  const std::string prefix2 = dir.file("m");
  ASSERT_TRUE(write_keypair(prefix2, new_keys()).ok());
  const std::string before = load_secret_key(prefix2 + ".key")->secret_z85;
  EXPECT_EQ(write_keypair(prefix2, new_keys()).code(), Code::kRefused);
  EXPECT_EQ(load_secret_key(prefix2 + ".key")->secret_z85, before);

  EXPECT_EQ(write_keypair("", new_keys()).code(), Code::kRefused);
  EXPECT_EQ(write_keypair(dir.file("sub/"), new_keys()).code(), Code::kRefused);
}

TEST(KeyFiles, RefusesSecretFileOthersCanRead) {
  TempDir dir;
  const std::string prefix = dir.file("loose");
  ASSERT_TRUE(write_keypair(prefix, new_keys()).ok());
  const std::string key = prefix + ".key";
  for (mode_t mode : {0644, 0640, 0604, 0660, 0606, 0610}) {
    ASSERT_EQ(::chmod(key.c_str(), mode), 0);
    auto r = load_secret_key(key);
    ASSERT_FALSE(r.ok()) << std::oct << mode;
    EXPECT_EQ(r.status().code(), Code::kRefused);
    EXPECT_TRUE(contains(r.status().message(), "chmod 600 " + key)) << r.status().message();
  }
  for (mode_t mode : {0600, 0400}) {
    ASSERT_EQ(::chmod(key.c_str(), mode), 0);
    EXPECT_TRUE(load_secret_key(key).ok()) << std::oct << mode;
  }
}

TEST(KeyFiles, Z85Table) {
  const std::string good = new_keys().public_z85;
  struct Row {
    std::string key;
    bool ok;
  };
  const std::vector<Row> rows = {
      {good, true},
      {"", false},
      {good.substr(0, 39), false},                // too short
      {good + "A", false},                        // too long
      {std::string(40, ' '), false},              // not in the alphabet
      {good.substr(0, 39) + "\"", false},         // quote is not Z85
      {good.substr(0, 39) + "~", false},          // neither is ~
      {good.substr(0, 39) + std::string(1, '\0'), false},
      {std::string(40, '#'), false},              // every group overflows 32 bits
      {"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", true},  // libzmq's test key
      {std::string(40, '0'), true},               // all-zero key: valid Z85
  };
  for (const Row& row : rows) {
    Status st = validate_z85_key(row.key);
    EXPECT_EQ(st.ok(), row.ok) << "'" << row.key << "': " << st.to_string();
    if (!row.ok) {
      EXPECT_EQ(st.code(), Code::kInvalidArgument);
    }
  }
  EXPECT_FALSE(binary_to_z85("short").ok());
  EXPECT_FALSE(z85_to_binary("short").ok());
}

TEST(KeyFiles, RefusesDamagedSecretFiles) {
  TempDir dir;
  KeyPair a = new_keys();
  KeyPair b = new_keys();
  auto cert = [](const std::string& pub, const std::string& sec) {
    std::string t = "metadata\ncurve\n";
    if (!pub.empty()) t += "    public-key = \"" + pub + "\"\n";
    if (!sec.empty()) t += "    secret-key = \"" + sec + "\"\n";
    return t;
  };
  struct Row {
    std::string name;
    std::string text;
    std::string message;
  };
  const std::vector<Row> rows = {
      {"mismatch", cert(a.public_z85, b.secret_z85), "does not belong"},
      {"public-only", cert(a.public_z85, ""), "has no secret-key"},
      {"no-public", cert("", a.secret_z85), "has no public-key"},
      {"bad-z85", cert(a.public_z85, a.secret_z85.substr(0, 39) + "~"), "line 4"},
      {"short", cert(a.public_z85.substr(0, 30), a.secret_z85), "40 Z85 characters"},
      {"twice", cert(a.public_z85, a.secret_z85) + cert(a.public_z85, ""), "given twice"},
      {"empty", "", "has no public-key"},
      {"binary", std::string("\0\1\2\3", 4), "has no public-key"},
  };
  for (const Row& row : rows) {
    const std::string path = dir.file(row.name + ".key");
    write_text(path, row.text, 0600);
    auto r = load_secret_key(path);
    ASSERT_FALSE(r.ok()) << row.name;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << row.name;
    EXPECT_TRUE(contains(r.status().message(), row.message)) << row.name << ": "
                                                             << r.status().message();
    EXPECT_TRUE(contains(r.status().message(), path)) << row.name;
  }
  const std::string big = dir.file("big.key");
  write_text(big, std::string(100 * 1024, '#'), 0600);
  EXPECT_EQ(load_secret_key(big).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(load_secret_key(dir.file("missing.key")).status().code(), Code::kNotFound);
  ASSERT_TRUE(fs::create_directory(dir.file("dir.key")));
  ::chmod(dir.file("dir.key").c_str(), 0700);
  EXPECT_EQ(load_secret_key(dir.file("dir.key")).status().code(), Code::kRefused);
}

TEST(KeyFiles, ReadsCzmqCertificates) {
  TempDir dir;
  KeyPair k = new_keys();
  const std::string path = dir.file("czmq_secret");
  write_text(path,
             "#   ****  Generated on 2026-01-01 by CZMQ  ****\n"
             "#   ZeroMQ CURVE **Secret** Certificate\n\n"
             "metadata\n    name = \"node1\"\n    email = \"ops@example.com\"\n"
             "curve\n    public-key = \"" + k.public_z85 + "\"\r\n"
             "    secret-key = \"" + k.secret_z85 + "\"\n",
             0600);
  auto loaded = load_secret_key(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->secret_z85, k.secret_z85);
}

TEST(KeyFiles, PublicKeyArgument) {
  auto r = load_public_key("not-a-key-and-not-a-file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_TRUE(contains(r.status().message(), "40-character Z85 key"));
  const std::string almost = new_keys().public_z85.substr(0, 39) + "~";
  EXPECT_FALSE(load_public_key(almost).ok());  // 40 characters, not Z85, no such file
}

// ---- zpsctl keygen --------------------------------------------------------------------

struct CliRun {
  int rc;
  std::string out;
  std::string err;
};

CliRun run_zpsctl(const std::vector<std::string>& args) {
  std::ostringstream out;
  std::ostringstream err;
  ctl::Io io{out, err};
  const int rc = ctl::run_cli(args, io);
  return {rc, out.str(), err.str()};
}

TEST(Keygen, WritesAPairWithoutABroker) {
  TempDir dir;
  const std::string prefix = dir.file("alice");
  // A broker address nobody answers on: keygen must not even try it.
  const auto t0 = Clock::now();
  CliRun r = run_zpsctl({"--broker", "tcp://192.0.2.1:6830", "--timeout", "30", "--json",
                         "keygen", "--out", prefix});
  EXPECT_LT(Clock::now() - t0, 5s);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc.at("secret_file"), prefix + ".key");
  EXPECT_EQ(doc.at("public_file"), prefix + ".pub");
  auto keys = load_secret_key(prefix + ".key");
  ASSERT_TRUE(keys.ok()) << keys.status().to_string();
  EXPECT_EQ(doc.at("public"), keys->public_z85);
  EXPECT_EQ(load_public_key(prefix + ".pub").value(), keys->public_z85);
  EXPECT_EQ(mode_of(prefix + ".key"), 0600u);

  r = run_zpsctl({"keygen", "--out", prefix});  // never overwrites: refused
  EXPECT_EQ(r.rc, 4);
  EXPECT_TRUE(contains(r.err, "already exists")) << r.err;
  EXPECT_EQ(load_secret_key(prefix + ".key")->secret_z85, keys->secret_z85);

  r = run_zpsctl({"keygen", "--out", dir.file("node7")});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "agent node7 " + load_public_key(dir.file("node7.pub")).value()));
  r = run_zpsctl({"keygen", "--out", dir.file("missing/x")});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(contains(r.err, "create the directory first")) << r.err;
}

// ---- Authorized keys ------------------------------------------------------------------

TEST(AuthorizedKeys, ParseTable) {
  const std::string k1 = new_keys().public_z85;
  const std::string k2 = new_keys().public_z85;
  const std::string k3 = new_keys().public_z85;
  struct Row {
    std::string name;
    std::string text;
    bool ok;
    size_t entries;       // when ok
    std::string message;  // when not: a part of it
  };
  const std::vector<Row> rows = {
      {"empty", "", true, 0, ""},
      {"comments and blanks", "# fleet keys\n\n   \n\t# indented comment\n", true, 0, ""},
      {"one agent", "agent node1 " + k1 + "\n", true, 1, ""},
      {"agent and operator", "agent node1 " + k1 + "\noperator alice " + k2, true, 2, ""},
      {"tabs, CRLF, trailing comment",
       "agent\tnode1\t" + k1 + "\r\noperator  alice  " + k2 + "  # laptop\n", true, 2, ""},
      {"same name, two roles", "agent x " + k1 + "\noperator x " + k2 + "\n", true, 2, ""},
      {"unknown role", "admin bob " + k1 + "\n", false, 0, "unknown role 'admin'"},
      {"bad agent id", "agent no/slash " + k1 + "\n", false, 0, "agent id"},
      {"id starting with dash", "agent -x " + k1 + "\n", false, 0, "must not start"},
      {"bad operator name", "operator al!ce " + k1 + "\n", false, 0, "operator names"},
      {"bad key", "agent node1 " + k1.substr(0, 39) + "\n", false, 0, "40 Z85"},
      {"bad key char", "agent node1 " + k1.substr(0, 39) + "~\n", false, 0, "not Z85"},
      {"missing key", "agent node1\n", false, 0, "got 2 fields"},
      {"extra field", "agent node1 " + k1 + " extra\n", false, 0, "got 4 fields"},
      {"duplicate key", "agent a " + k1 + "\noperator b " + k1 + "\n", false, 0,
       "line 2: this key is already listed for agent:a"},
      {"duplicate agent", "agent a " + k1 + "\nagent a " + k3 + "\n", false, 0,
       "agent:a is listed twice"},
      {"error names the line", "# c\n\nagent node1 " + k1 + "\nagent n2 xyz\n", false, 0,
       "test-file line 4"},
      {"overlong line", "agent a " + k1 + " #" + std::string(2000, 'x') + "\n", false, 0,
       "longer than"},
  };
  for (const Row& row : rows) {
    auto r = AuthorizedKeys::parse(row.text, "test-file");
    EXPECT_EQ(r.ok(), row.ok) << row.name << ": " << r.status().to_string();
    if (r.ok() && row.ok) {
      EXPECT_EQ(r->size(), row.entries) << row.name;
    }
    if (!r.ok() && !row.ok) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << row.name;
      EXPECT_TRUE(contains(r.status().message(), row.message))
          << row.name << ": " << r.status().message();
      EXPECT_TRUE(contains(r.status().message(), "test-file line ")) << row.name;
    }
  }
}

TEST(AuthorizedKeys, FindsIdentityByKey) {
  KeyPair agent = new_keys();
  KeyPair op = new_keys();
  auto keys = AuthorizedKeys::parse(
      "agent dst1 " + agent.public_z85 + "\noperator alice " + op.public_z85 + "\n", "t");
  ASSERT_TRUE(keys.ok()) << keys.status().to_string();
  auto a = keys->find(agent.public_z85);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->role, Identity::Role::kAgent);
  EXPECT_EQ(a->name, "dst1");
  EXPECT_EQ(a->user_id(), "agent:dst1");
  auto o = keys->find(z85_to_binary(op.public_z85).value());  // the raw form ZAP gives
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->user_id(), "operator:alice");
  EXPECT_FALSE(keys->find(new_keys().public_z85).has_value());
  EXPECT_FALSE(keys->find("").has_value());
  EXPECT_FALSE(keys->find(agent.secret_z85).has_value());
  EXPECT_EQ(keys->key_of({Identity::Role::kAgent, "dst1"}).value(), agent.public_z85);
  EXPECT_FALSE(keys->key_of({Identity::Role::kOperator, "dst1"}).has_value());
  EXPECT_FALSE(AuthorizedKeys().find(agent.public_z85).has_value());
}

TEST(AuthorizedKeys, UserIdRoundTrip) {
  EXPECT_EQ(parse_user_id("agent:dst1").value(), (Identity{Identity::Role::kAgent, "dst1"}));
  EXPECT_EQ(parse_user_id("operator:alice").value(),
            (Identity{Identity::Role::kOperator, "alice"}));
  for (const char* bad : {"", "agent", "agent:", ":x", "root:x", "agent:a/b", "agent:-a"}) {
    EXPECT_FALSE(parse_user_id(bad).ok()) << bad;
  }
}

TEST(AuthorizedKeys, LoadRefusesFileOthersCanWrite) {
  TempDir dir;
  const std::string path = dir.file("authorized_keys");
  write_text(path, "agent a " + new_keys().public_z85 + "\n", 0644);
  ASSERT_TRUE(AuthorizedKeys::load(path).ok());
  for (mode_t mode : {0664, 0646}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto r = AuthorizedKeys::load(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kRefused);
    EXPECT_TRUE(contains(r.status().message(), "chmod go-w " + path));
  }
  EXPECT_EQ(AuthorizedKeys::load(dir.file("nope")).status().code(), Code::kNotFound);
}

// ---- Plaintext policy -----------------------------------------------------------------

TEST(Endpoints, LoopbackTable) {
  struct Row {
    const char* endpoint;
    bool loopback;
  };
  const std::vector<Row> rows = {
      {"tcp://127.0.0.1:6830", true},
      {"tcp://127.1.2.3:6830", true},
      {"tcp://127.0.0.1:*", true},
      {"tcp://[::1]:6830", true},
      {"tcp://::1:6830", true},
      {"tcp://[::ffff:127.0.0.1]:6830", true},
      {"tcp://localhost:6830", true},
      {"tcp://LocalHost:6830", true},
      {"ipc:///run/zpsend/broker.sock", true},
      {"ipc://@abstract", true},
      {"inproc://control", true},
      {"tcp://127.0.0.1:1234;127.0.0.1:6830", true},
      {"tcp://0.0.0.0:6830", false},
      {"tcp://*:6830", false},
      {"tcp://[::]:6830", false},
      {"tcp://10.0.0.2:6830", false},
      {"tcp://128.0.0.1:6830", false},
      {"tcp://[::ffff:10.0.0.1]:6830", false},
      {"tcp://broker.example.com:6830", false},
      {"tcp://localhost.evil.com:6830", false},
      {"tcp://lo:6830", false},    // an interface name: could be anything
      {"tcp://eth0:6830", false},
      {"tcp://127.1:6830", false}, // not dotted-quad: a resolver might read it otherwise
      {"tcp://127.0.0.1", false},  // no port
      {"tcp://127.0.0.1:", false},
      {"tcp://127.0.0.1:http", false},
      {"tcp://:6830", false},
      {"tcp://[::1]", false},
      {"tcp://10.0.0.5:1234;127.0.0.1:6830", false},
      {"tcp://127.0.0.1:1234;10.0.0.5:6830", false},
      {"udp://127.0.0.1:6830", false},
      {"ws://127.0.0.1:6830", false},
      {"TCP://127.0.0.1:6830", false},
      {"127.0.0.1:6830", false},
      {"", false},
  };
  for (const Row& row : rows) {
    EXPECT_EQ(is_loopback_endpoint(row.endpoint), row.loopback) << row.endpoint;
  }
  EXPECT_FALSE(is_loopback_endpoint(std::string("tcp://127.0.0.1:1\0x", 19)));
}

TEST(Endpoints, PlaintextPolicy) {
  EXPECT_TRUE(check_plaintext_allowed({}, false, "zps-agent").ok());
  EXPECT_TRUE(check_plaintext_allowed({"tcp://127.0.0.1:6830", "tcp://[::1]:7000"}, false,
                                      "zps-agent")
                  .ok());
  Status st = check_plaintext_allowed({"tcp://127.0.0.1:6830", "tcp://10.0.0.2:7000"}, false,
                                      "zps-agent", "--key FILE --broker-key KEY");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kRefused);
  EXPECT_TRUE(contains(st.message(), "zps-agent"));
  EXPECT_TRUE(contains(st.message(), "tcp://10.0.0.2:7000"));
  EXPECT_FALSE(contains(st.message(), "6830"));
  EXPECT_TRUE(contains(st.message(), "zpsctl keygen"));
  EXPECT_TRUE(contains(st.message(), "--key FILE --broker-key KEY"));
  EXPECT_TRUE(contains(st.message(), "--insecure"));
  EXPECT_TRUE(check_plaintext_allowed({"tcp://0.0.0.0:6830"}, true, "zps-broker").ok());
}

// ---- ZAP requests ---------------------------------------------------------------------

std::vector<std::string> curve_request(const std::string& domain, const std::string& raw_key,
                                       const std::string& id = "1") {
  return {"1.0", id, domain, "127.0.0.1", "", "CURVE", raw_key};
}

TEST(Zap, ParseRequestTable) {
  const std::string key = z85_to_binary(new_keys().public_z85).value();
  auto good = parse_zap_request(curve_request("control", key, "42"));
  ASSERT_TRUE(good.ok()) << good.status().to_string();
  EXPECT_EQ(good->request_id, "42");
  EXPECT_EQ(good->domain, "control");
  EXPECT_EQ(good->address, "127.0.0.1");
  EXPECT_EQ(good->mechanism, "CURVE");
  EXPECT_EQ(good->client_key, key);
  EXPECT_EQ(good->client_key_z85, binary_to_z85(key).value());
  EXPECT_TRUE(parse_zap_request({"1.0", "1", "d", "a", "i", "NULL"}).ok());

  const std::vector<std::vector<std::string>> bad = {
      {},
      {"1.0"},
      {"1.0", "1", "d", "a", "i"},
      {"2.0", "1", "d", "a", "i", "CURVE", key},
      {"1.0", "1", "d", "a", "i", "CURVE"},
      {"1.0", "1", "d", "a", "i", "CURVE", "short"},
      {"1.0", "1", "d", "a", "i", "CURVE", key, key},
      {"1.0", "1", "d", "a", "i", "NULL", "x"},
      {"1.0", "1", std::string(5000, 'd'), "a", "i", "CURVE", key},
      std::vector<std::string>(20, "1.0"),
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    auto r = parse_zap_request(bad[i]);
    EXPECT_FALSE(r.ok()) << "row " << i;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kProtocol) << "row " << i;
    }
  }
}

// Talks to a ZapHandler directly over its inproc endpoint, as libzmq does, but with
// whatever frames a test wants.
std::vector<std::string> ask_handler(zmq::context_t& ctx, const std::vector<std::string>& frames) {
  zmq::socket_t req(ctx, zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.set(zmq::sockopt::rcvtimeo, 3000);
  req.connect(kZapEndpoint);
  for (size_t i = 0; i < frames.size(); ++i) {
    req.send(zmq::buffer(frames[i]),
             i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  std::vector<std::string> reply;
  bool more = true;
  while (more) {
    zmq::message_t part;
    if (!req.recv(part)) return {"<no reply>"};
    more = part.more();
    reply.push_back(part.to_string());
  }
  return reply;
}

TEST(Zap, HandlerAnswersGarbageAndKeepsWorking) {
  zmq::context_t ctx;
  const std::string known = z85_to_binary(new_keys().public_z85).value();
  const std::string unknown = z85_to_binary(new_keys().public_z85).value();
  auto handler = ZapHandler::start(ctx, [&](const ZapRequest& r) -> std::optional<std::string> {
    if (r.domain == "boom") throw std::runtime_error("policy bug");
    if (r.client_key == known) return std::string("agent:a");
    return std::nullopt;
  });
  ASSERT_TRUE(handler.ok()) << handler.status().to_string();

  auto r = ask_handler(ctx, {"1.0", "7", "control", "127.0.0.1", "", "CURVE", "short"});
  EXPECT_EQ(r, (std::vector<std::string>{"1.0", "7", "500", "malformed ZAP request", "", ""}));
  r = ask_handler(ctx, {"garbage"});
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[2], "500");
  r = ask_handler(ctx, std::vector<std::string>(30, std::string(10, 'x')));
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[2], "500");
  r = ask_handler(ctx, {"1.0", "8", "control", "a", "i", "CURVE", std::string(100000, 'k')});
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[1], "8");
  EXPECT_EQ(r[2], "500");
  r = ask_handler(ctx, curve_request("boom", known, "9"));
  EXPECT_EQ(r[2], "500");

  r = ask_handler(ctx, curve_request("control", unknown, "10"));
  EXPECT_EQ(r, (std::vector<std::string>{"1.0", "10", "400", "not authorized", "", ""}));
  r = ask_handler(ctx, curve_request("control", known, "11"));
  EXPECT_EQ(r, (std::vector<std::string>{"1.0", "11", "200", "OK", "agent:a", ""}));
  EXPECT_EQ((*handler)->accepted(), 1u);
  EXPECT_EQ((*handler)->denied(), 1u);
  EXPECT_EQ((*handler)->malformed(), 5u);
}

TEST(Zap, OneHandlerPerContextAndCleanStops) {
  zmq::context_t ctx;
  auto deny = [](const ZapRequest&) { return std::optional<std::string>(); };
  auto first = ZapHandler::start(ctx, deny);
  ASSERT_TRUE(first.ok());
  auto second = ZapHandler::start(ctx, deny);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(contains(second.status().message(), "already runs"));
  const auto t0 = Clock::now();
  first = Status(Code::kCancelled, "destroyed");  // destroys the handler
  EXPECT_LT(Clock::now() - t0, 1s);
  EXPECT_TRUE(ZapHandler::start(ctx, deny).ok());  // the endpoint is free again

  // A context shut down under a running handler: the thread leaves on its own, and
  // the destructor and the context's termination both return.
  auto ctx2 = std::make_unique<zmq::context_t>();
  auto third = ZapHandler::start(*ctx2, deny);
  ASSERT_TRUE(third.ok());
  ctx2->shutdown();
  third = Status(Code::kCancelled, "destroyed");
  ctx2.reset();
}

TEST(Zap, RegistryIsPerDomain) {
  ZapKeyRegistry registry;
  KeyPair sender = new_keys();
  KeyPair other = new_keys();
  const std::string raw_sender = z85_to_binary(sender.public_z85).value();
  ASSERT_TRUE(registry.set("data:7", sender.public_z85, "agent:src").ok());
  EXPECT_FALSE(registry.set("", sender.public_z85).ok());
  EXPECT_FALSE(registry.set("data:8", "nonsense").ok());
  ZapPolicy policy = registry.policy();

  auto req = [&](const std::string& domain, const std::string& raw, const char* mech = "CURVE") {
    ZapRequest r;
    r.domain = domain;
    r.mechanism = mech;
    r.client_key = raw;
    return r;
  };
  EXPECT_EQ(policy(req("data:7", raw_sender)).value_or("denied"), "agent:src");
  EXPECT_FALSE(policy(req("data:7", z85_to_binary(other.public_z85).value())).has_value());
  EXPECT_FALSE(policy(req("data:8", raw_sender)).has_value());
  EXPECT_FALSE(policy(req("data:7", raw_sender, "NULL")).has_value());
  {
    auto scoped = ScopedZapKey::add(registry, "data:9", other.public_z85);
    ASSERT_TRUE(scoped.ok());
    EXPECT_EQ(policy(req("data:9", z85_to_binary(other.public_z85).value())),
              std::optional<std::string>(other.public_z85));  // no user id: the key
    EXPECT_EQ(registry.size(), 2u);
  }
  EXPECT_EQ(registry.size(), 1u);
  registry.erase("data:7");
  EXPECT_FALSE(policy(req("data:7", raw_sender)).has_value());
}

// ---- CURVE on real sockets ------------------------------------------------------------

// Reads one whole message within `timeout`; empty when none came.
std::vector<zmq::message_t> recv_within(zmq::socket_t& socket, std::chrono::milliseconds timeout) {
  std::vector<zmq::message_t> frames;
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return frames;
  bool more = true;
  while (more) {
    zmq::message_t part;
    if (!socket.recv(part, zmq::recv_flags::none)) break;
    more = part.more();
    frames.push_back(std::move(part));
  }
  return frames;
}

template <typename F>
bool eventually(F condition, std::chrono::milliseconds timeout = 3s) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// A broker-like ROUTER: CURVE server, domain "control", judged by an authorized-keys
// file that lists one agent and one operator.
class CurveControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto keys = AuthorizedKeys::parse("agent node1 " + agent_.public_z85 + "\noperator alice " +
                                          operator_.public_z85 + "\n",
                                      "test");
    ASSERT_TRUE(keys.ok()) << keys.status().to_string();
    auto handler = ZapHandler::start(
        ctx_, authorized_keys_policy(std::make_shared<const AuthorizedKeys>(std::move(*keys))));
    ASSERT_TRUE(handler.ok()) << handler.status().to_string();
    handler_ = std::move(handler).value();
    router_.set(zmq::sockopt::linger, 0);
    Status st = make_curve_server(router_, server_, kControlZapDomain);
    ASSERT_TRUE(st.ok()) << st.to_string();
    router_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
  }

  // A DEALER connected to the router, CURVE with `own` unless `plain`.
  std::unique_ptr<zmq::socket_t> dealer(const KeyPair* own,
                                        const std::string& server_key = std::string()) {
    auto s = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
    s->set(zmq::sockopt::linger, 0);
    if (own != nullptr) {
      Status st =
          make_curve_client(*s, *own, server_key.empty() ? server_.public_z85 : server_key);
      EXPECT_TRUE(st.ok()) << st.to_string();
    }
    s->connect(endpoint_);
    return s;
  }

  zmq::context_t ctx_;  // first: outlives every socket
  KeyPair server_ = new_keys();
  KeyPair agent_ = new_keys();
  KeyPair operator_ = new_keys();
  std::unique_ptr<ZapHandler> handler_;
  zmq::socket_t router_{ctx_, zmq::socket_type::router};
  std::string endpoint_;
};

TEST_F(CurveControlTest, AuthorizedKeysGetThroughWithTheirUserId) {
  for (const auto& [keys, user] : {std::pair{&agent_, "agent:node1"},
                                   std::pair{&operator_, "operator:alice"}}) {
    auto client = dealer(keys);
    client->send(zmq::str_buffer("hello"), zmq::send_flags::none);
    auto frames = recv_within(router_, 3s);
    ASSERT_EQ(frames.size(), 2u) << user;
    EXPECT_EQ(frames[1].to_string(), "hello");
    EXPECT_EQ(user_id_of(frames[1]), user);
    // ... and the reply goes back encrypted on the same connection.
    router_.send(frames[0], zmq::send_flags::sndmore);
    router_.send(zmq::str_buffer("welcome"), zmq::send_flags::none);
    auto reply = recv_within(*client, 3s);
    ASSERT_EQ(reply.size(), 1u) << user;
    EXPECT_EQ(reply[0].to_string(), "welcome");
  }
  EXPECT_EQ(handler_->accepted(), 2u);
}

TEST_F(CurveControlTest, UnknownKeyGetsNothing) {
  KeyPair stranger = new_keys();
  auto client = dealer(&stranger);
  client->send(zmq::str_buffer("let me in"), zmq::send_flags::none);
  EXPECT_TRUE(eventually([&] { return handler_->denied() > 0; }));
  EXPECT_TRUE(recv_within(router_, 500ms).empty());
  EXPECT_TRUE(recv_within(*client, 200ms).empty());
  EXPECT_EQ(handler_->accepted(), 0u);
}

TEST_F(CurveControlTest, PlaintextClientGetsNothing) {
  auto client = dealer(nullptr);
  client->send(zmq::str_buffer("plain"), zmq::send_flags::none);
  EXPECT_TRUE(recv_within(router_, 500ms).empty());
  EXPECT_TRUE(recv_within(*client, 200ms).empty());
  EXPECT_EQ(handler_->accepted(), 0u);
}

TEST_F(CurveControlTest, ClientRefusesAServerWithAnotherKey) {
  // The agent's key is authorized, but it expects another server (a man in the middle
  // would have to hold that server's secret key).
  auto client = dealer(&agent_, new_keys().public_z85);
  client->send(zmq::str_buffer("secret"), zmq::send_flags::none);
  EXPECT_TRUE(recv_within(router_, 500ms).empty());
  EXPECT_EQ(handler_->accepted(), 0u);
}

TEST_F(CurveControlTest, PlainMessagesHaveNoUserId) {
  zmq::message_t plain("x", 1);
  EXPECT_EQ(user_id_of(plain), "");
}

TEST(Curve, ServerWithoutHandlerRefusesEveryone) {
  if (!zap_enforcement_supported()) GTEST_SKIP() << "libzmq lacks ZMQ_ZAP_ENFORCE_DOMAIN";
  zmq::context_t ctx;
  KeyPair server = new_keys();
  KeyPair client_keys = new_keys();
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  ASSERT_TRUE(make_curve_server(pull, server, "data:1").ok());
  pull.bind("tcp://127.0.0.1:*");
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 0);
  ASSERT_TRUE(make_curve_client(push, client_keys, server.public_z85).ok());
  push.connect(pull.get(zmq::sockopt::last_endpoint));
  push.send(zmq::str_buffer("x"), zmq::send_flags::dontwait);
  EXPECT_TRUE(recv_within(pull, 700ms).empty());
}

TEST(Curve, HelpersCheckTheirArguments) {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::pull);
  KeyPair k = new_keys();
  EXPECT_FALSE(make_curve_server(s, k, "").ok());
  EXPECT_FALSE(make_curve_server(s, KeyPair{k.public_z85, "bad"}, "control").ok());
  EXPECT_FALSE(make_curve_client(s, k, "bad").ok());
  EXPECT_TRUE(make_curve_server(s, k, "control").ok());
  EXPECT_TRUE(s.get(zmq::sockopt::curve_server));
  EXPECT_EQ(s.get(zmq::sockopt::zap_domain), "control");
}

// ---- The data socket: one sender key per session --------------------------------------

uint16_t data_port_base() { return static_cast<uint16_t>(52000 + (getpid() % 150) * 20); }

// A PUSH socket with CURVE `own` keys that sends hand-made pipe frames.
class CurvePusher {
 public:
  CurvePusher(zmq::context_t& ctx, const KeyPair& own, const std::string& server_key,
              const std::string& endpoint)
      : socket_(ctx, zmq::socket_type::push) {
    socket_.set(zmq::sockopt::immediate, 1);  // queue nothing until the handshake is done
    socket_.set(zmq::sockopt::sndtimeo, 700);
    socket_.set(zmq::sockopt::linger, 0);
    EXPECT_TRUE(make_curve_client(socket_, own, server_key).ok());
    socket_.connect(endpoint);
  }
  // A data frame with sequence number 0: it would break the real stream if it arrived.
  bool send_first_frame(const std::string& token) {
    std::string frame(pipe::kHeaderBytes, '\0');
    pipe::write_header(frame.data(), pipe::FrameKind::kData, token, 0);
    frame += "intruder";
    return socket_.send(zmq::buffer(frame), zmq::send_flags::none).has_value();
  }

 private:
  zmq::socket_t socket_;
};

TEST(CurveData, OnlyTheRegisteredSenderKeyAndTokenGetThrough) {
  signal(SIGPIPE, SIG_IGN);
  zmq::context_t ctx;
  KeyPair receiver = new_keys();
  KeyPair sender = new_keys();
  KeyPair other_agent = new_keys();  // a valid key, just not this session's sender
  ZapKeyRegistry registry;
  auto handler = ZapHandler::start(ctx, registry.policy());
  ASSERT_TRUE(handler.ok());
  const std::string domain = data_zap_domain("7");
  auto expected = ScopedZapKey::add(registry, domain, sender.public_z85, "agent:src1");
  ASSERT_TRUE(expected.ok());

  pipe::Options options;
  options.stall_timeout = 5s;
  options.heartbeat_interval = 200ms;
  options.linger = 500ms;
  options.chunk_bytes = 64 * 1024;
  pipe::Options listen_options = options;
  listen_options.configure_socket = curve_server_setup(receiver, domain);
  const std::string token_hex = pipe::make_token();
  const std::string token = pipe::token_from_hex(token_hex).value();
  auto listener = pipe::PipeListener::bind(ctx, "127.0.0.1", "127.0.0.1", data_port_base(),
                                           data_port_base() + 19, token_hex, listen_options);
  ASSERT_TRUE(listener.ok()) << listener.status().to_string();
  const std::string endpoint = (*listener)->endpoint();

  // The received stream goes to a pipe that a thread drains.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string received;
  std::thread drain([&] {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) received.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
  });
  std::atomic<bool> cancel{false};
  Result<pipe::Stats> result = Status(Code::kInternal, "not run");
  std::thread receive([&] { result = (*listener)->receive_to(fds[1], cancel); });

  // A valid key that is not this session's: the handshake is refused, so nothing can
  // even be queued (ZMQ_IMMEDIATE) and the send times out.
  auto wrong_key = std::make_unique<CurvePusher>(ctx, other_agent, receiver.public_z85, endpoint);
  EXPECT_FALSE(wrong_key->send_first_frame(token));
  EXPECT_TRUE(eventually([&] { return (*handler)->denied() >= 1; }));
  // The right key with a wrong token: the connection is accepted, the pipe drops it.
  CurvePusher wrong_token(ctx, sender, receiver.public_z85, endpoint);
  EXPECT_TRUE(wrong_token.send_first_frame(std::string(pipe::kTokenBytes, 'x')));

  // The real transfer, through the same socket, while both strangers stay connected.
  std::string data(1024 * 1024 + 123, '\0');
  std::mt19937_64 rng(7);
  for (char& c : data) c = static_cast<char>(rng());
  int in[2];
  ASSERT_EQ(::pipe(in), 0);
  std::thread feed([&] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(in[1], data.data() + off, data.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(in[1]);
  });
  pipe::Options send_options = options;
  send_options.configure_socket = curve_client_setup(sender, receiver.public_z85);
  auto pusher = pipe::PipeSender::connect(ctx, endpoint, token_hex, send_options);
  ASSERT_TRUE(pusher.ok()) << pusher.status().to_string();
  auto sent = (*pusher)->stream_from(in[0], cancel);
  feed.join();
  ::close(in[0]);
  ASSERT_TRUE(sent.ok()) << sent.status().to_string();
  ASSERT_TRUE((*pusher)->finish().ok());
  receive.join();
  ::close(fds[1]);
  drain.join();

  ASSERT_TRUE(result.ok()) << result.status().to_string();
  EXPECT_EQ(result->bytes, data.size());
  EXPECT_EQ(result->hash, XXH3_64bits(data.data(), data.size()));
  EXPECT_GE(result->refused_frames, 1u);  // the wrong token's frame, dropped
  EXPECT_EQ(received, data);
  EXPECT_GE((*handler)->accepted(), 2u);  // the real sender and the wrong-token one

  // Once the session ends and its key is erased, even the right key is refused.
  wrong_key.reset();  // no more retries of its own to count
  expected->reset();
  const uint64_t denied = (*handler)->denied();
  CurvePusher late(ctx, sender, receiver.public_z85, endpoint);
  EXPECT_FALSE(late.send_first_frame(token));
  EXPECT_TRUE(eventually([&] { return (*handler)->denied() > denied; }));
}

}  // namespace
}  // namespace zps
