// Waits for a job to end while showing its progress: what `replicate` (without
// --detach) and `watch` do.
//
// The broker pushes job_event notices to watchers, but notices can be lost (a broker
// restart forgets its watchers; a reconnect drops queued messages). So the follower
// also asks for the job's state every `refresh`, and re-sends its watch request (under
// the same id, so the broker never counts it twice) when the broker answers again after
// a silence or when the state shows progress no event reported. It gives up only after
// `give_up` without any answer. The job is over when a reply shows a final state; an
// `ended` event triggers an immediate refresh to fetch the job with its hops.
//
// Thread-safety: one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>

#include "ctl/client.h"
#include "ctl/context.h"
#include "ctl/failure.h"
#include "ctl/progress.h"
#include "shared/protocol.h"

namespace zps::ctl {

struct FollowTiming {
  std::chrono::milliseconds refresh{2000};
  std::chrono::milliseconds give_up{60000};
};

class JobFollower {
 public:
  JobFollower(Context& ctx, BrokerClient& client, uint64_t job, FollowTiming timing = {});
  JobFollower(const JobFollower&) = delete;
  JobFollower& operator=(const JobFollower&) = delete;

  // The job once it has ended (with its hops when the broker could give them), or why
  // the wait stopped: unreachable for `give_up`, Ctrl-C, or the broker refused the watch.
  Outcome<proto::JobInfo> run();

 private:
  using Clock = std::chrono::steady_clock;

  void send_watch();
  void send_refresh();
  void on_message(const proto::Envelope& e);
  void on_reply(const proto::Envelope& e);
  void on_job(const proto::JobInfo& job);
  void on_event(const proto::JobEvent& ev);
  void check_silence();
  Failure gave_up() const;
  void announce(const proto::JobInfo& job);

  Context& ctx_;
  BrokerClient& client_;
  uint64_t job_;
  FollowTiming timing_;
  ProgressPrinter printer_;

  uint64_t watch_id_ = 0;
  std::map<uint64_t, Clock::time_point> pending_;  // request id -> when it was sent
  Clock::time_point last_answer_;
  Clock::time_point next_refresh_;
  bool silent_ = false;  // a request went unanswered for longer than --timeout
  bool announced_ = false;
  int events_since_refresh_ = 0;
  uint32_t known_hops_done_ = 0;  // as of the last event or reply
  uint64_t known_bytes_ = 0;

  std::optional<proto::JobInfo> ended_by_event_;  // the state an `ended` event carried
  Clock::time_point ended_at_;
  std::optional<proto::JobInfo> final_;
  std::optional<Failure> failure_;
};

}  // namespace zps::ctl
