#include "ctl/follow.h"

#include <algorithm>

#include "ctl/exit_codes.h"
#include "ctl/format.h"
#include "ctl/text_view.h"

namespace zps::ctl {
namespace {

constexpr std::chrono::milliseconds kSlice{100};
constexpr size_t kMaxPending = 256;  // unanswered requests remembered

}  // namespace

JobFollower::JobFollower(Context& ctx, BrokerClient& client, uint64_t job, FollowTiming timing)
    : ctx_(ctx), client_(client), job_(job), timing_(timing), printer_(ctx.io(), ctx.json(), job) {}

Outcome<proto::JobInfo> JobFollower::run() {
  last_answer_ = Clock::now();
  send_watch();
  next_refresh_ = Clock::now() + timing_.refresh;
  while (!final_ && !failure_) {
    if (client_.stopped()) {
      printer_.finish();
      const std::string id = std::to_string(job_);
      return interrupted("job " + id + " continues on the broker; follow it with zpsctl watch " +
                         id);
    }
    const auto now = Clock::now();
    const auto wait =
        std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(next_refresh_ - now),
                   std::chrono::milliseconds(1), kSlice);
    if (auto e = client_.next(wait)) on_message(*e);
    if (final_ || failure_) break;
    if (ended_by_event_ && Clock::now() - ended_at_ > ctx_.timeout()) {
      final_ = ended_by_event_;  // the broker went quiet right after the end: use what we know
      break;
    }
    if (Clock::now() >= next_refresh_) send_refresh();
    check_silence();
    if (Clock::now() - last_answer_ > timing_.give_up) failure_ = gave_up();
  }
  printer_.finish();
  if (failure_) return *failure_;
  for (const auto& w : final_->warnings) printer_.warning(w);
  printer_.finish();
  return *final_;
}

void JobFollower::send_watch() {
  // Reusing the id makes a repeated watch idempotent on the broker (its watcher set is
  // keyed by peer and request id).
  watch_id_ = client_.send(proto::WatchRequest{job_}, watch_id_);
  pending_[watch_id_] = Clock::now();
}

void JobFollower::send_refresh() {
  if (pending_.size() >= kMaxPending) pending_.erase(pending_.begin());
  pending_[client_.send(proto::JobRequest{job_})] = Clock::now();
  next_refresh_ = Clock::now() + timing_.refresh;
  events_since_refresh_ = 0;
}

void JobFollower::on_message(const proto::Envelope& e) {
  if (e.is_reply()) return on_reply(e);
  if (e.type != proto::JobEvent::kType) return;
  auto ev = e.as<proto::JobEvent>();
  if (ev.ok() && ev->job == job_) on_event(*ev);
}

void JobFollower::on_reply(const proto::Envelope& e) {
  auto answered = pending_.find(e.re);
  if (answered == pending_.end()) return;  // stale, or not ours
  // The broker answers these requests in order: any sent before this one were lost.
  const auto sent = answered->second;
  std::erase_if(pending_, [&](const auto& p) { return p.second <= sent; });
  last_answer_ = Clock::now();
  if (silent_) {
    silent_ = false;
    // The broker may have restarted and forgotten its watchers.
    send_watch();
  }
  auto job = ctx_.decode<proto::JobReply>(e, "cannot follow job " + std::to_string(job_));
  if (!job.ok()) {
    failure_ = job.failure();
    return;
  }
  const bool missed_events =
      events_since_refresh_ == 0 && e.re != watch_id_ &&
      (job->job.hops_done != known_hops_done_ || job->job.bytes != known_bytes_);
  on_job(job->job);
  if (missed_events && !final_) send_watch();
}

void JobFollower::on_job(const proto::JobInfo& job) {
  known_hops_done_ = job.hops_done;
  known_bytes_ = job.bytes;
  for (const auto& w : job.warnings) printer_.warning(w);
  if (is_final_state(job.state)) {
    final_ = job;
    return;
  }
  announce(job);
}

void JobFollower::on_event(const proto::JobEvent& ev) {
  ++events_since_refresh_;
  if (ev.state.id == job_) {
    known_hops_done_ = ev.state.hops_done;
    known_bytes_ = ev.state.bytes;
  }
  printer_.on_event(ev);
  if (ev.kind == "ended" || (ev.state.id == job_ && is_final_state(ev.state.state))) {
    if (!ended_by_event_) {
      ended_by_event_ = ev.state;
      ended_at_ = Clock::now();
      send_refresh();  // the final state with hops
    }
  }
}

void JobFollower::check_silence() {
  if (silent_) return;
  const auto now = Clock::now();
  for (const auto& [id, sent] : pending_) {
    if (now - sent > ctx_.timeout()) {
      silent_ = true;
      printer_.finish();
      ctx_.io().err << "zpsctl: no answer from the broker at " << client_.endpoint() << " for "
                    << format_seconds(ctx_.options().timeout_s) << "; still trying for up to "
                    << format_seconds(std::chrono::duration<double>(timing_.give_up).count())
                    << " (job " << job_ << " does not depend on zpsctl)" << std::endl;
      return;
    }
  }
}

Failure JobFollower::gave_up() const {
  const std::string id = std::to_string(job_);
  return Failure{kExitUnreachable,
                 "no answer from the broker at " + client_.endpoint() + " for " +
                     format_seconds(std::chrono::duration<double>(timing_.give_up).count()) +
                     " while following job " + id +
                     "; check that zps-broker runs there, then see how " +
                     "the job ended with zpsctl job " + id};
}

void JobFollower::announce(const proto::JobInfo& job) {
  if (announced_ || ctx_.json()) return;
  announced_ = true;
  printer_.finish();
  ctx_.print("job " + std::to_string(job.id) + " " + job.state + ": " + job.source + " -> " +
             job.target + "\n");
}

}  // namespace zps::ctl
