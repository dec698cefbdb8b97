#include "engine.h"

#include <cstdlib>
#include <exception>

namespace alexnet {

Buf::~Buf() {
  std::free(data);
  if (stats) {
    stats->bytes -= (int64_t)bytes;
    stats->buffers -= 1;
  }
}

EngineCore::EngineCore(int idx, uint64_t engineId) : index(idx), id(engineId) {
  thread_ = std::thread([this] { loop(); });
}

EngineCore::~EngineCore() { shutdown(); }

uint64_t EngineCore::enqueue(std::function<void()> fn) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(m_);
    if (stop_) throw std::runtime_error("the engine was destroyed");
    queue_.push_back(std::move(fn));
    seq = ++submitted_;
  }
  work_.notify_one();
  return seq;
}

uint64_t EngineCore::submitted() {
  std::lock_guard<std::mutex> lock(m_);
  return submitted_;
}

void EngineCore::waitReached(uint64_t seq) {
  std::unique_lock<std::mutex> lock(m_);
  done_.wait(lock, [&] { return completed_ >= seq || dead_; });
}

bool EngineCore::idle() {
  std::lock_guard<std::mutex> lock(m_);
  return completed_ == submitted_;
}

std::string EngineCore::takeError() {
  std::lock_guard<std::mutex> lock(m_);
  std::string e;
  e.swap(error_);
  return e;
}

void EngineCore::shutdown() {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  work_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> lock(m_);
    dead_ = true;
  }
  done_.notify_all();
  pool.resize(1);
  ws.release();
}

void EngineCore::loop() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(m_);
      work_.wait(lock, [&] { return !queue_.empty() || stop_; });
      if (queue_.empty()) return;  // stopped and drained
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    std::string err;
    try {
      fn();
    } catch (const std::bad_alloc&) {
      err = "out of memory in a queued op";
    } catch (const std::exception& e) {
      err = e.what();
    } catch (...) {
      err = "unknown error in a queued op";
    }
    fn = nullptr;  // drop the op's buffer references here, after it ran
    {
      std::lock_guard<std::mutex> lock(m_);
      if (!err.empty() && error_.empty()) error_ = "cpu:" + std::to_string(index) + ": " + err;
      ++completed_;
    }
    done_.notify_all();
  }
}

}  // namespace alexnet
