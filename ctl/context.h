// What every zpsctl command works with: the global options, where output goes, and the
// broker connection (opened on first use, so a refused name never touches the network).
//
// Thread-safety: one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <zmq.hpp>

#include "ctl/client.h"
#include "ctl/failure.h"
#include "ctl/options.h"

namespace zps::ctl {

// Where output goes. main() passes the process's streams; tests pass string streams.
struct Io {
  std::ostream& out;
  std::ostream& err;
  // stderr is a terminal: progress is one line rewritten with '\r'.
  bool err_is_tty = false;
  size_t term_width = 80;
  const std::atomic<bool>* stop = nullptr;  // set by Ctrl-C
};

class Context {
 public:
  Context(GlobalOptions options, Io io);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const GlobalOptions& options() const { return options_; }
  Io& io() { return io_; }
  bool json() const { return options_.json; }
  std::chrono::milliseconds timeout() const;

  // The broker connection, connected on first use.
  Outcome<BrokerClient*> client();

  // Sends `request`, waits for its reply and decodes it as R. A failed reply becomes a
  // Failure whose message starts with `context` ("cannot list snapshots of a:b").
  template <class R, wire::HasFields Q>
  Outcome<R> ask(const Q& request, const std::string& context) {
    auto c = client();
    if (!c.ok()) return c.failure();
    auto reply = (*c)->call(request, timeout());
    if (!reply.ok()) return no_reply(reply.status());
    return decode<R>(*reply, context);
  }

  template <class R>
  Outcome<R> decode(const proto::Envelope& reply, const std::string& context) {
    if (!reply.ok) return broker_error(context, reply.error_status());
    auto r = reply.as<R>();
    if (!r.ok()) return unreadable(r.status());
    return std::move(r).value();
  }

  // What a missing reply means: unreachable (exit 3) or interrupted.
  Failure no_reply(const Status& why) const;
  Failure unreadable(const Status& why) const;

  // Prints "zpsctl: <message>" on stderr; returns the failure's exit status.
  int fail(const Failure& failure);
  // Prints the one JSON document of a --json run.
  void print_json(const nlohmann::ordered_json& doc);
  void print(const std::string& text) { io_.out << text << std::flush; }

 private:
  GlobalOptions options_;
  Io io_;
  std::unique_ptr<zmq::context_t> zmq_;
  std::unique_ptr<BrokerClient> client_;
};

}  // namespace zps::ctl
