// One CPU engine (device "cpu:i"): an in-order queue run by its own thread, a worker pool for the
// parallel-for of its ops, and per-engine scratch. JavaScript enqueues closures and returns; the
// closures hold shared_ptr references to their buffers, so freeing a buffer that a queued op still
// uses only drops JavaScript's reference (the memory goes when the op is done).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "kernels.h"
#include "threadpool.h"

namespace alexnet {

enum DType : int { kFloat32 = 0, kFloat64 = 1, kInt32 = 2, kUint8 = 3 };

/** Live memory of one engine (shared by its buffers, which may outlive it by an op or two). */
struct MemoryStats {
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> buffers{0};
};

/** 64-byte aligned host memory of `length` elements. */
struct Buf {
  void* data = nullptr;
  int64_t length = 0;
  size_t bytes = 0;
  int dtype = kFloat32;
  uint64_t owner = 0;  // engine id
  std::shared_ptr<MemoryStats> stats;
  ~Buf();
  float* f32() const { return static_cast<float*>(data); }
  int32_t* i32() const { return static_cast<int32_t*>(data); }
  uint8_t* u8() const { return static_cast<uint8_t*>(data); }
};
using BufPtr = std::shared_ptr<Buf>;

class EngineCore {
 public:
  EngineCore(int index, uint64_t id);
  ~EngineCore();
  EngineCore(const EngineCore&) = delete;
  EngineCore& operator=(const EngineCore&) = delete;

  /** Queues fn; returns its sequence number (1, 2, ...). */
  uint64_t enqueue(std::function<void()> fn);
  /** Sequence number of the last op queued so far. */
  uint64_t submitted();
  /** Blocks the caller until op `seq` has finished (or the engine is shut down). */
  void waitReached(uint64_t seq);
  bool idle();
  /** The first error of a queued op since the last call, or "" (and clears it). */
  std::string takeError();
  /** Runs what is queued, then stops the thread; later waiters return at once. */
  void shutdown();

  const int index;
  const uint64_t id;
  ThreadPool pool;    // only the queue thread uses these two
  Workspace ws;
  std::shared_ptr<MemoryStats> stats = std::make_shared<MemoryStats>();

 private:
  void loop();
  std::mutex m_;
  std::condition_variable work_, done_;
  std::deque<std::function<void()>> queue_;
  uint64_t submitted_ = 0, completed_ = 0;
  bool stop_ = false, dead_ = false;
  std::string error_;
  std::thread thread_;
};

}  // namespace alexnet
