// The worker pool behind one engine's parallel-for. The engine's queue thread is thread 0 and runs
// its share itself; threads - 1 workers wait on a condition variable. A job is a function called
// once per thread with (tid, nthreads); it partitions its own work, so there is no task queue.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace alexnet {

class ThreadPool {
 public:
  ThreadPool() = default;
  ~ThreadPool() { resize(1); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return (int)workers_.size() + 1; }

  /** Total threads (caller included). Only the owning (queue) thread calls it, between jobs. */
  void resize(int threads) {
    if (threads < 1) threads = 1;
    if (threads == size()) return;
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    uint64_t g = generation_;  // workers start from here, so a job posted before they run is not missed
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i, g] { workerLoop(i, g); });
  }

  /** Calls fn(tid, n) on `n` = min(size(), maxThreads) threads and waits for all of them. */
  void run(const std::function<void(int, int)>& fn, int maxThreads = 1 << 30) {
    int n = size() < maxThreads ? size() : maxThreads;
    if (n <= 1) { fn(0, 1); return; }
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = &fn;
      jobThreads_ = n;
      pending_ = n - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    std::exception_ptr mine;
    try { fn(0, n); } catch (...) { mine = std::current_exception(); }
    std::unique_lock<std::mutex> lock(m_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

  /** Static split of [0, total) into contiguous ranges, one per thread; small work stays serial. */
  void parallelFor(int64_t total, int64_t minPerThread, const std::function<void(int64_t, int64_t)>& fn) {
    if (total <= 0) return;
    int64_t want = total / (minPerThread > 0 ? minPerThread : 1);
    int n = (int)(want < size() ? (want < 1 ? 1 : want) : size());
    if (n <= 1) { fn(0, total); return; }
    run([&](int tid, int nt) {
      int64_t b = total * tid / nt, e = total * (tid + 1) / nt;
      if (b < e) fn(b, e);
    }, n);
  }

 private:
  void workerLoop(int tid, uint64_t seen) {
    for (;;) {
      const std::function<void(int, int)>* job;
      int n;
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        job = job_;
        n = jobThreads_;
      }
      if (!job || tid >= n) continue;
      std::exception_ptr err;
      try { (*job)(tid, n); } catch (...) { err = std::current_exception(); }
      {
        std::lock_guard<std::mutex> lock(m_);
        if (err && !error_) error_ = err;
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_, done_;
  const std::function<void(int, int)>* job_ = nullptr;
  int jobThreads_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace alexnet
