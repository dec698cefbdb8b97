// The host emulation of the CUDA subset that native/cuda uses, so that the very same kernel sources
// (native/cuda/kernels/*.cuh) and engine (native/cuda/engine.cu) compile with g++ and run without a
// GPU (backend 'cuda-emu'). What it emulates, and how:
//   - kernel launches: every block of the grid runs, blocks spread over the stream's worker threads;
//   - the threads of a block run as cooperatively scheduled fibers (own stacks, a hand-rolled
//     context switch), so __syncthreads() is a real barrier: a thread that reaches it yields, and the
//     block moves on only when every live thread has arrived;
//   - __shared__ is `static thread_local`: one copy per OS worker thread, and a worker runs one block
//     at a time, so it is per-block storage shared by that block's fibers;
//   - atomics are real host atomics (blocks on different workers run at the same time);
//   - streams are in-order queues, each with its own host thread; events are (stream, position)
//     pairs; device memory is host memory that only the queue's copies and kernels touch.
// It proves indexing, tiling, bounds and barriers. It cannot prove speed or memory-model races
// between threads of a block (fibers never interleave between barriers): the GPU run does that.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <functional>

#define ALEXNET_CUDA_EMU 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __align__(n) __attribute__((aligned(n)))

struct uint3 { unsigned int x, y, z; };
struct alignas(16) float4 { float x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
struct dim3 {
  unsigned int x, y, z;
  dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

/** Barrier of the current block: yields this fiber until every live thread of the block arrives. */
void __syncthreads();

// ---- atomics (return the old value, like CUDA's) ----
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline float atomicAdd(float* p, float v) {
  uint32_t* w = reinterpret_cast<uint32_t*>(p);
  uint32_t old = __atomic_load_n(w, __ATOMIC_RELAXED), next;
  do {
    float f; memcpy(&f, &old, 4); f += v; memcpy(&next, &f, 4);
  } while (!__atomic_compare_exchange_n(w, &old, next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  uint32_t o = old; float r; memcpy(&r, &o, 4); return r;
}
inline int atomicMax(int* p, int v) {
  int old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
  return old;
}

template <class T> inline T __ldg(const T* p) { return *p; }
inline unsigned int __umulhi(unsigned int a, unsigned int b) { return (unsigned int)(((uint64_t)a * b) >> 32); }

// ---- the runtime subset (emu/runtime.cpp) ----
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorNotReady = 600,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4,
};
enum cudaDeviceAttr { cudaDevAttrMaxGridDimY = 6, cudaDevAttrMaxGridDimZ = 7, cudaDevAttrMultiProcessorCount = 16 };
#define cudaStreamNonBlocking 0x01
#define cudaEventDisableTiming 0x02

namespace emu { struct Stream; struct Event; }
typedef emu::Stream* cudaStream_t;
typedef emu::Event* cudaEvent_t;

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceCanAccessPeer(int* can, int device, int peer);
cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned int flags);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemcpyPeerAsync(void* dst, int dstDevice, const void* src, int srcDevice, size_t bytes, cudaStream_t s);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
/** Queues fn(data) on s, after the work queued before it (stand-in vendor libraries use this). */
cudaError_t cudaLaunchHostFunc(cudaStream_t s, void (*fn)(void*), void* data);
/** The error of the last launch on this thread (an invalid configuration, as a GPU's), then cleared. */
cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t e);

namespace emu {
/**
 * Runs `kernel` (a closure calling the __global__ function) for every thread of every block, in order
 * on `s`. A launch a GPU would refuse (gridDim.x beyond 2^31 - 1, gridDim.y or .z beyond 65535, a zero
 * dimension, more than 1024 threads a block) is refused the same way: nothing runs and the next
 * cudaGetLastError() on this thread says cudaErrorInvalidConfiguration. ALEXNET_CUDA_EMU_GRID_YZ=n
 * lowers the y and z limit (and cudaDevAttrMaxGridDimY/Z with it), so tests reach the engine's
 * launches in pieces with small grids.
 */
void launch(cudaStream_t s, dim3 grid, dim3 block, std::function<void()> kernel);
/** Worker threads (the queue thread included) that run the blocks of a stream's kernels. */
void setStreamThreads(cudaStream_t s, int threads);
int getStreamThreads(cudaStream_t s);
/** Blocks so far in which some threads returned while others waited at a barrier (a kernel bug). */
long long barrierDivergences();
/** Runs a grid synchronously on the calling thread (tests of the emulation layer itself). */
void runGridHere(dim3 grid, dim3 block, const std::function<void()>& kernel);
}  // namespace emu

// ---- warp matrix ops (nvcuda::wmma), the TF32 subset the tensor-core GEMM uses ----
// The fragment layout is unspecified in CUDA, so the emulation may choose one: every thread holds the
// whole A and B tiles, and the accumulator's elements are spread over the 32 lanes of a warp (lane l
// computes and stores the elements e = l, l + 32, ...), as on a GPU, so an emulated product costs what
// a float32 one does. What it proves: the tile addressing, the leading dimensions, the TF32 rounding,
// and that the warp's stores complete before its lanes read the staged tile (__syncwarp).
void __syncwarp(unsigned mask = 0xffffffffu);  // a block barrier here: the GEMM calls it uniformly

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision { struct tf32 {}; }
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment;
template <int M, int N, int K, class L>
struct fragment<matrix_a, M, N, K, precision::tf32, L> { static constexpr int num_elements = M * K; float x[M * K]; };
template <int M, int N, int K, class L>
struct fragment<matrix_b, M, N, K, precision::tf32, L> { static constexpr int num_elements = K * N; float x[K * N]; };
template <int M, int N, int K>
struct fragment<accumulator, M, N, K, float, void> { static constexpr int num_elements = M * N; float x[M * N]; };

inline float __float_to_tf32(float f) {
  // cvt.rna.tf32.f32: round to nearest, ties away from zero, to a 10-bit mantissa
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  memcpy(&f, &u, 4);
  return f;
}
template <int M, int N, int K>
inline void fill_fragment(fragment<accumulator, M, N, K, float, void>& c, float v) {
  for (int i = 0; i < M * N; ++i) c.x[i] = v;
}
template <int M, int N, int K>
inline void load_matrix_sync(fragment<matrix_a, M, N, K, precision::tf32, row_major>& a, const float* p, unsigned ldm) {
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) a.x[i * K + k] = p[i * ldm + k];
}
template <int M, int N, int K>
inline void load_matrix_sync(fragment<matrix_b, M, N, K, precision::tf32, row_major>& b, const float* p, unsigned ldm) {
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < N; ++j) b.x[k * N + j] = p[k * ldm + j];
}
/** The lane (0..31) of the calling thread in its warp: it owns accumulator elements e with e % 32 == lane. */
inline int laneOf() { return (int)(threadIdx.x % 32u); }
template <int M, int N, int K>
inline void mma_sync(fragment<accumulator, M, N, K, float, void>& d, const fragment<matrix_a, M, N, K, precision::tf32, row_major>& a,
                     const fragment<matrix_b, M, N, K, precision::tf32, row_major>& b,
                     const fragment<accumulator, M, N, K, float, void>& c) {
  for (int e = laneOf(); e < M * N; e += 32) {
    const int i = e / N, j = e % N;
    float s = c.x[e];
    for (int k = 0; k < K; ++k) s = fmaf(a.x[i * K + k], b.x[k * N + j], s);
    d.x[e] = s;
  }
}
/** Each lane stores the elements it owns; the warp's __syncwarp() after it completes the tile. */
template <int M, int N, int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float, void>& c, unsigned ldm, layout_t layout) {
  for (int e = laneOf(); e < M * N; e += 32) {
    const int i = e / N, j = e % N;
    if (layout == mem_row_major) p[i * ldm + j] = c.x[e];
    else p[j * ldm + i] = c.x[e];
  }
}
}  // namespace wmma
}  // namespace nvcuda
