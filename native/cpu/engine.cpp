#include "engine.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

namespace alexnet {

size_t bufSizeClass(size_t bytes) {
  if (bytes == 0) return 64;
  constexpr size_t kSmall = (size_t)1 << 20;
  if (bytes <= kSmall) return (bytes + 63) / 64 * 64;
  size_t p = kSmall;
  while (p <= bytes / 2) p *= 2;  // p: the highest power of two <= bytes
  const size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

Buf::~Buf() {
  if (stats) {
    stats->bytes -= (int64_t)bytes;
    stats->buffers -= 1;
  }
  if (cache) cache->give(data, bytes);
  else std::free(data);
}

BufCache::~BufCache() { close(); }

void* BufCache::take(size_t bytes) {
  std::lock_guard<std::mutex> lock(m_);
  auto it = bySize_.find(bytes);
  if (it == bySize_.end()) return nullptr;
  auto li = lru_.find(it->second);
  void* p = li->second.p;
  lru_.erase(li);
  bySize_.erase(it);
  cachedBytes -= (int64_t)bytes;
  cachedBlocks -= 1;
  return p;
}

std::vector<void*> BufCache::evictLocked(int64_t keep) {
  std::vector<void*> out;
  while (cachedBytes.load() > keep && !lru_.empty()) {
    auto li = lru_.begin();
    const size_t b = li->second.bytes;
    auto range = bySize_.equal_range(b);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == li->first) { bySize_.erase(it); break; }
    }
    out.push_back(li->second.p);
    lru_.erase(li);
    cachedBytes -= (int64_t)b;
    cachedBlocks -= 1;
  }
  return out;
}

void BufCache::give(void* p, size_t bytes) {
  std::vector<void*> evicted;
  {
    std::lock_guard<std::mutex> lock(m_);
    const int64_t lim = limit();
    if (closed_ || (int64_t)bytes > lim) {
      evicted.push_back(p);
    } else {
      const uint64_t seq = nextSeq_++;
      lru_.emplace(seq, Block{p, bytes});
      bySize_.emplace(bytes, seq);
      cachedBytes += (int64_t)bytes;
      cachedBlocks += 1;
      evicted = evictLocked(lim);
    }
  }
  for (void* q : evicted) std::free(q);
}

int64_t BufCache::trim(int64_t keep) {
  std::vector<void*> evicted;
  int64_t before;
  {
    std::lock_guard<std::mutex> lock(m_);
    before = cachedBytes.load();
    evicted = evictLocked(std::max<int64_t>(keep, 0));
    before -= cachedBytes.load();
  }
  for (void* q : evicted) std::free(q);
  return before;
}

void BufCache::close() {
  {
    std::lock_guard<std::mutex> lock(m_);
    closed_ = true;
  }
  trim(0);
}

int64_t BufCache::limit() const {
  const int64_t explicitLimit = limit_.load();
  if (explicitLimit >= 0) return explicitLimit;
  const int64_t peak = stats_ ? stats_->peakBytes.load() : 0;
  return std::max<int64_t>((int64_t)1 << 30, 2 * peak);
}

void BufCache::setLimit(int64_t bytes) {
  limit_ = bytes < 0 ? -1 : bytes;
  trim(limit());
}

BufPtr EngineCore::alloc(int dtype, int64_t length) {
  if (length > ((int64_t)1 << 40)) throw std::invalid_argument("length " + std::to_string(length) + " is too large");
  const size_t bytes = bufSizeClass((size_t)length * (size_t)dtypeBytes(dtype));
  void* p = cache->take(bytes);
  if (!p) p = std::aligned_alloc(64, bytes);
  if (!p) {
    cache->trim(0);  // give the cache back to the system and try once more
    p = std::aligned_alloc(64, bytes);
  }
  if (!p) throw std::runtime_error("out of memory allocating " + std::to_string(bytes) + " bytes");
  auto b = std::make_shared<Buf>();
  b->data = p;
  b->length = length;
  b->bytes = bytes;
  b->dtype = dtype;
  b->owner = id;
  b->stats = stats;
  b->cache = cache;
  const int64_t live = (stats->bytes += (int64_t)bytes);
  stats->buffers += 1;
  if (live > stats->peakBytes.load()) stats->peakBytes = live;  // only the JavaScript thread writes it
  return b;
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
  pool.resize(1);   // the workers exit, and their scratch with them (the queue thread's went with it)
  cache->close();  // buffers that outlive the engine free their memory at once
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
