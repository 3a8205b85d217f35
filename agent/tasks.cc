#include "agent/tasks.h"

namespace zps::agent {

TaskPool::TaskPool(zmq::context_t& ctx, std::string bus_endpoint, int threads)
    : ctx_(ctx), endpoint_(std::move(bus_endpoint)) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

TaskPool::~TaskPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void TaskPool::post(Task task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void TaskPool::work() {
  BusClient bus(ctx_, endpoint_);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;
    Task task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task(bus);
    lock.lock();
  }
}

}  // namespace zps::agent
