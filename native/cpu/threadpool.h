// The worker pool behind one engine's parallel loops. The engine's queue thread is thread 0 and
// works too; threads - 1 workers wait for the next job.
//
// Loops are split into chunks that threads claim from an atomic counter (dynamic scheduling), not
// into one fixed share per thread: the machine is shared, and a worker that the OS deschedules for a
// few milliseconds must not stall the whole op at the end of every parallel region. Whoever runs
// takes the work; a worker that wakes late finds the counter exhausted and never touches the job.
// Waiting spins for up to 20 us before sleeping: a convolution is ~100 short parallel regions, and a
// futex wake-up costs tens of microseconds.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
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
  using RangeFn = std::function<void(int64_t, int64_t)>;

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
    const uint64_t g = generation_.load();
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, g] { workerLoop(g); });
  }

  /**
   * fn(b, e) over [0, total) in chunks of `chunk` (the last one shorter), claimed dynamically by
   * every thread of the pool; returns when all chunks are done. total <= chunk runs inline.
   */
  void forChunks(int64_t total, int64_t chunk, const RangeFn& fn) {
    if (total <= 0) return;
    if (chunk < 1) chunk = 1;
    if (size() <= 1 || total <= chunk) { fn(0, total); return; }
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->total = total;
    job->chunk = chunk;
    {
      std::lock_guard<std::mutex> lock(m_);
      current_ = job;
    }
    generation_.fetch_add(1, std::memory_order_acq_rel);
    wake();
    work(*job);
    auto finished = [&] { return job->active.load() == 0; };
    if (!spinUntil(finished)) {
      std::unique_lock<std::mutex> lock(m_);
      done_.wait(lock, finished);
    }
    {
      std::lock_guard<std::mutex> lock(m_);
      current_.reset();
    }
    if (job->error) std::rethrow_exception(job->error);
  }

  /** fn over [0, total), about four chunks per thread and at least minChunk each. */
  void parallelFor(int64_t total, int64_t minChunk, const RangeFn& fn) {
    const int64_t parts = 4 * (int64_t)size();
    forChunks(total, std::max<int64_t>(minChunk, (total + parts - 1) / parts), fn);
  }

  /** fn(tid, n) once on each of the pool's n threads at the same time (the peak-FLOP loop). */
  void runOnAll(const std::function<void(int, int)>& fn) {
    const int n = size();
    std::atomic<int> next{0};
    forChunks(n, 1, [&](int64_t, int64_t) { fn(next.fetch_add(1), n); });
  }

 private:
  struct Job {
    const RangeFn* fn = nullptr;
    int64_t total = 0, chunk = 1;
    std::atomic<int64_t> next{0};
    std::atomic<int> active{0};
    std::mutex errorMutex;
    std::exception_ptr error;
  };

  /** Claims chunks until none are left. `active` is raised before claiming, so the owner waits for us. */
  void work(Job& job) {
    job.active.fetch_add(1);
    for (;;) {
      const int64_t b = job.next.fetch_add(job.chunk);
      if (b >= job.total) break;
      const int64_t e = b + job.chunk < job.total ? b + job.chunk : job.total;
      try {
        (*job.fn)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lock(job.errorMutex);
        if (!job.error) job.error = std::current_exception();
      }
    }
    if (job.active.fetch_sub(1) == 1) {
      { std::lock_guard<std::mutex> lock(m_); }
      done_.notify_all();
    }
  }

  /** Spins up to ~20 us for cond; true when it became true. */
  template <class Cond>
  static bool spinUntil(Cond cond) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0;; ++i) {
      if (cond()) return true;
      ALEXNET_PAUSE();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() - start > std::chrono::microseconds(20)) return false;
    }
  }

  void wake() {
    { std::lock_guard<std::mutex> lock(m_); }  // a worker is either past its check or waiting: no lost wake-up
    cv_.notify_all();
  }

  void workerLoop(uint64_t seen) {
    for (;;) {
      auto changed = [&] { return generation_.load(std::memory_order_acquire) != seen || stop_.load(); };
      if (!spinUntil(changed)) {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, changed);
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      std::shared_ptr<Job> job;
      {
        std::lock_guard<std::mutex> lock(m_);
        job = current_;
      }
      if (job) work(*job);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_, done_;
  std::shared_ptr<Job> current_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace alexnet
