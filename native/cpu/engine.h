// One CPU engine (device "cpu:i"): an in-order queue run by its own thread, a worker pool for the
// parallel-for of its ops (their scratch is per thread: kernels/common.h), and the allocation policy.
// JavaScript enqueues closures and returns; the closures hold shared_ptr references to their buffers,
// so freeing a buffer that a queued op still uses only drops JavaScript's reference (the memory goes
// when the op is done). Memory whose last reference is gone returns to the engine's BufCache, from
// which alloc takes blocks of the same size class.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../common/dtype.h"
#include "threadpool.h"

namespace alexnet {

/** Live memory of one engine (shared by its buffers, which may outlive it by an op or two). */
struct MemoryStats {
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> buffers{0};
  std::atomic<int64_t> peakBytes{0};  // highest `bytes` seen (alloc updates it)
};

/** Size class of an allocation: 64-byte multiples up to 1 MiB, then 8 classes per power of two. */
size_t bufSizeClass(size_t bytes);

/**
 * Blocks whose last reference is gone, by size class, for alloc to reuse (no page faults, no
 * mmap/munmap per step for large activations). Thread-safe: blocks come back on whichever thread
 * drops the last reference (usually the queue thread, after the last op using them) while the
 * JavaScript thread takes them. A block is here only once no op on any engine references it.
 * Bounded: cached bytes stay <= limit() (the oldest blocks are freed first); close() empties it and
 * makes later returns free at once (destroyed engine).
 */
class BufCache {
 public:
  explicit BufCache(std::shared_ptr<MemoryStats> stats) : stats_(std::move(stats)) {}
  ~BufCache();
  /** A cached block of exactly `bytes` (a size class), or nullptr. */
  void* take(size_t bytes);
  /** Takes ownership of a block whose last reference is gone: caches it or frees it. */
  void give(void* p, size_t bytes);
  /** Frees cached blocks, oldest first, until at most `keep` bytes remain; returns the bytes freed. */
  int64_t trim(int64_t keep = 0);
  /** Empties the cache; later give() frees at once. */
  void close();
  /** The bound: an explicit limit if set (>= 0), else max(1 GiB, 2 x peak live bytes). */
  int64_t limit() const;
  /** -1 restores the default bound. Trims to the new bound. */
  void setLimit(int64_t bytes);
  std::atomic<int64_t> cachedBytes{0};
  std::atomic<int64_t> cachedBlocks{0};

 private:
  std::vector<void*> evictLocked(int64_t keep);  // caller holds m_, frees the result outside it
  std::shared_ptr<MemoryStats> stats_;
  std::atomic<int64_t> limit_{-1};
  std::mutex m_;
  bool closed_ = false;
  uint64_t nextSeq_ = 0;
  struct Block { void* p; size_t bytes; };
  std::map<uint64_t, Block> lru_;              // by return order: begin() is the oldest
  std::multimap<size_t, uint64_t> bySize_;     // size class -> sequence number in lru_
};

/** 64-byte aligned host memory of `length` elements. */
struct Buf {
  void* data = nullptr;
  int64_t length = 0;
  size_t bytes = 0;
  int dtype = kFloat32;
  uint64_t owner = 0;  // engine id
  std::shared_ptr<MemoryStats> stats;
  std::shared_ptr<BufCache> cache;  // where the memory goes when the last reference is dropped
  // Whether an op or read of some engine's queue was ever given this buffer (set when it is queued):
  // until then no queued work can touch it, so write copies into it at once (no staging copy).
  std::atomic<bool> queued{false};
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

  /**
   * A buffer of `length` elements of `dtype` whose contents are unspecified (Engine.alloc): a cached
   * block of its size class when there is one (a block is in the cache only once no op on any engine
   * holds it), else fresh 64-byte aligned memory; when that fails the cache goes back to the system
   * and the allocation is tried once more. No zero-fill, so alloc queues nothing. Throws
   * std::invalid_argument (too large) or std::bad_alloc. Called on the JavaScript thread.
   */
  std::shared_ptr<Buf> alloc(int dtype, int64_t length);
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
  ThreadPool pool;  // only the queue thread uses it
  std::shared_ptr<MemoryStats> stats = std::make_shared<MemoryStats>();
  std::shared_ptr<BufCache> cache = std::make_shared<BufCache>(stats);

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
