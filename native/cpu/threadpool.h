// The worker pool behind one engine's parallel-for. The engine's queue thread is thread 0 and runs
// its share itself; threads - 1 workers wait for the next job. A job is a function called once per
// thread with (tid, nthreads); it partitions its own work, so there is no task queue.
// Waiting spins briefly before it sleeps: a convolution is a chain of ~100 short parallel regions
// (im2col, GEMM, scatter per chunk), and a condition-variable wake-up costs tens of microseconds.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ALEXNET_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define ALEXNET_PAUSE() __asm__ __volatile__("yield")
#else
#define ALEXNET_PAUSE() ((void)0)
#endif

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
    stop_.store(true);
    wake();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_.store(false);
    uint64_t g = generation_.load();  // workers start from here, so a job posted before they run is not missed
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i, g] { workerLoop(i, g); });
  }

  /** Calls fn(tid, n) on `n` = min(size(), maxThreads) threads and waits for all of them. */
  void run(const std::function<void(int, int)>& fn, int maxThreads = 1 << 30) {
    int n = size() < maxThreads ? size() : maxThreads;
    if (n <= 1) { fn(0, 1); return; }
    // Every worker takes part in every job (those with tid >= n just check in), so no worker can
    // still be reading job_ when the next job replaces it.
    job_ = &fn;
    jobThreads_ = n;
    error_ = nullptr;
    pending_.store(size() - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    wake();
    std::exception_ptr mine;
    try { fn(0, n); } catch (...) { mine = std::current_exception(); }
    if (!spinUntil([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(m_);
      done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
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
  /** Spins up to ~50 us for cond; true when it became true. */
  template <class Cond>
  static bool spinUntil(Cond cond) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0;; ++i) {
      if (cond()) return true;
      ALEXNET_PAUSE();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() - start > std::chrono::microseconds(50)) return false;
    }
  }

  void wake() {
    { std::lock_guard<std::mutex> lock(m_); }  // a worker is either past its check or waiting: no lost wake-up
    cv_.notify_all();
  }

  void workerLoop(int tid, uint64_t seen) {
    for (;;) {
      auto changed = [&] { return generation_.load(std::memory_order_acquire) != seen || stop_.load(); };
      if (!spinUntil(changed)) {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, changed);
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      const std::function<void(int, int)>* job = job_;
      const int n = jobThreads_;
      std::exception_ptr err;
      if (job && tid < n) {
        try { (*job)(tid, n); } catch (...) { err = std::current_exception(); }
      }
      if (err) {
        std::lock_guard<std::mutex> lock(m_);
        if (!error_) error_ = err;
      }
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        { std::lock_guard<std::mutex> lock(m_); }
        done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_, done_;
  const std::function<void(int, int)>* job_ = nullptr;
  int jobThreads_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

}  // namespace alexnet
