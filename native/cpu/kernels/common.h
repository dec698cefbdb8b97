// What every kernel file of the CPU engine includes (as native/cuda/kernels/common.cuh is for the CUDA
// kernels): the worker pool, the ISA dispatch, the shapes, the one scratch memory, and small helpers.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "../../common/geometry.h"
#include "../isa.h"
#include "../threadpool.h"

#define ALEXNET_INLINE inline __attribute__((always_inline))

// Data-movement loops (im2col, col2im, panel packing) get AVX-512 / AVX2 clones picked by the loader
// (they are bit-exact copies and sums in any ISA, so ALEXNET_CPU_ISA does not need to reach them).
#if ALEXNET_X86 && defined(__linux__) && !defined(__clang__)
#define ALEXNET_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define ALEXNET_CLONES
#endif

namespace alexnet {

/** Below this many elements an elementwise loop is not worth waking a worker. */
constexpr int64_t kElementwiseGrain = 1 << 16;

/** A positive integer from the environment (tuning knobs, docs/cpu-engine.md), else dflt. */
inline int64_t envInt(const char* name, int64_t dflt) {
  const char* s = std::getenv(name);
  const long long v = s && *s ? std::atoll(s) : 0;
  return v > 0 ? (int64_t)v : dflt;
}

/** The mask of the first n of 16 vector lanes (0 for n <= 0, all for n >= 16): AVX-512 edges. */
inline uint16_t lanes16(int64_t n) {
  return n >= 16 ? (uint16_t)0xFFFF : n <= 0 ? (uint16_t)0 : (uint16_t)((1u << n) - 1u);
}

/** First output index o with o * stride + off >= 0, and one past the last with o * stride + off < limit. */
inline void validRange(int64_t off, int64_t stride, int64_t limit, int64_t outLen, int64_t* lo, int64_t* hi) {
  const int64_t a = off >= 0 ? 0 : (-off + stride - 1) / stride;
  const int64_t b = limit - 1 - off < 0 ? 0 : (limit - 1 - off) / stride + 1;
  *lo = std::min(a, outLen);
  *hi = std::max(*lo, std::min(b, outLen));
}

/**
 * The kernels' one scratch memory: per thread, one growing 64-byte aligned block per slot, contents
 * undefined. An engine's queue thread and its workers are its own, so this is per-engine scratch
 * too; it is freed when the thread exits (destroy, or setThreads for workers). A slot is used by one
 * op at a time on a thread; the slots below are who uses which.
 */
enum class Scratch : int {
  Col,     // conv: the im2col matrix (in the GEMM's packed-B layout)
  ColBf16, // conv, bf16 precision: the packed-B panels as bf16 pairs
  PackedBf16, // Winograd, bf16 precision: the filter transform as bf16 packed A
  Gather,  // conv: one group's outputs or gradients gathered from NCHW
  Packed,  // conv: packed weights, or dy packed as A
  Aux,     // conv: the spatial index map, or the filter gradient's partial sums
  Table,   // conv: per im2col row offsets and taps
  GemmA,   // gemm: packed blocks of A and B
  GemmB,
  Lrn,     // LRN: squares, scales and backward's t for a block of positions
  Pool,    // max-pool: a plane de-interleaved, best values and indices
  Row,     // softmax: one row's exponentials
  Rows,    // cross-entropy: per-row losses
  SpaceToDepthX,  // strided conv as stride-1 Winograd (space_to_depth.cpp): a chunk of samples' x'
  SpaceToDepthW,  // its weights w', or their gradient
  kSlots
};

class ScratchArena {
 public:
  ScratchArena() = default;
  ScratchArena(const ScratchArena&) = delete;
  ScratchArena& operator=(const ScratchArena&) = delete;
  ~ScratchArena() {
    for (Block& b : blocks_) std::free(b.p);
  }
  void* get(Scratch slot, size_t bytes) {
    Block& b = blocks_[(int)slot];
    if (bytes > b.cap || !b.p) {
      std::free(b.p);
      b.cap = 0;
      b.p = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
      if (!b.p) throw std::bad_alloc();
      b.cap = bytes;
    }
    return b.p;
  }

 private:
  struct Block {
    void* p = nullptr;
    size_t cap = 0;
  };
  Block blocks_[(int)Scratch::kSlots];
};

inline thread_local ScratchArena tlsScratch;

/** At least n elements of T in the calling thread's `slot`. */
template <class T = float>
T* scratch(Scratch slot, size_t n) {
  return static_cast<T*>(tlsScratch.get(slot, n * sizeof(T)));
}

}  // namespace alexnet
