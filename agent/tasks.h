// A few threads for the short pieces of work the agent's main loop must not block on
// (listing snapshots, preparing a receive), each with its own bus connection for the
// reply.
//
// Thread-safety: post() from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "agent/bus.h"

namespace zps::agent {

class TaskPool {
 public:
  using Task = std::function<void(BusClient&)>;
  TaskPool(zmq::context_t& ctx, std::string bus_endpoint, int threads);
  ~TaskPool();  // runs what is queued, then joins
  void post(Task task);

 private:
  void work();
  zmq::context_t& ctx_;
  std::string endpoint_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace zps::agent
