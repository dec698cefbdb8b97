// A stand-in for cuDNN 9 (-DSTANDIN_CUDNN: libcudnn.so.9) or cuBLASLt (-DSTANDIN_CUBLASLT:
// libcublasLt.so.12), built by the tests with g++ (test/standin.ts), nothing of NVIDIA's: it exports
// the functions native/cuda/vendor/loader.cpp resolves, with the declarations of vendor/api.h, and
// computes them with plain reference loops (double sums) on the emulated device's memory, queued on
// the emulated stream through the hooks the emulated engine hands it (alexnetStandinAttach), so the
// engine's vendor path runs end to end without a GPU: found, version read, descriptors, the algorithm
// search and its cache, workspace sizes, epilogues, TF32 math (inputs rounded to TF32 when the
// descriptors allow it), and the check against the engine's own kernels.
// Controls (environment, read at each call):
//   ALEXNET_STANDIN_LOG=file           one line per API call (what the tests read back)
//   ALEXNET_STANDIN_WRONG=op[,op]      the first run of conv2dForward / conv2dBackwardData /
//                                      conv2dBackwardFilter / gemm gives wrong results (+1 everywhere)
//   ALEXNET_STANDIN_FAIL=fn            cudnnCreate or cublasLtCreate fails
//   ALEXNET_STANDIN_CUDNN_VERSION      cudnnGetVersion()'s answer (default 90600)
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "api.h"

using namespace alexnet::cuda::vendor;

namespace {

const StandinHooks* gHooks = nullptr;
std::mutex gLogMutex;

std::string env(const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

void logLine(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logLine(const char* fmt, ...) {
  const std::string path = env("ALEXNET_STANDIN_LOG");
  if (path.empty()) return;
  std::lock_guard<std::mutex> l(gLogMutex);
  FILE* f = fopen(path.c_str(), "a");
  if (!f) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
  fclose(f);
}

/** Whether this run of `op` is the one to get wrong (the first, when ALEXNET_STANDIN_WRONG names it). */
bool wrongNow(const char* op, std::atomic<int>& runs) {
  const int n = runs.fetch_add(1);
  const std::string w = "," + env("ALEXNET_STANDIN_WRONG") + ",";
  return n == 0 && w.find(std::string(",") + op + ",") != std::string::npos;
}

bool failing(const char* fn) {
  const std::string w = "," + env("ALEXNET_STANDIN_FAIL") + ",";
  return w.find(std::string(",") + fn + ",") != std::string::npos;
}

/** cvt.rna.tf32.f32: the tensor cores' rounding of float32 inputs to a 10-bit mantissa. */
float tf32(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  memcpy(&f, &u, 4);
  return f;
}

/** Queues fn on the emulated stream (the work runs when the stream reaches it, like a kernel). */
template <class Job>
int enqueue(void* stream, Job* job) {
  if (!gHooks) {
    delete job;
    return 1;
  }
  return gHooks->enqueue(stream, [](void* p) {
    Job* j = static_cast<Job*>(p);
    j->run();
    delete j;
  }, job);
}

}  // namespace

#if !defined(STANDIN_NO_ATTACH)  // without it: a library with the functions that is not a stand-in (the tests' case of one)
extern "C" void alexnetStandinAttach(const StandinHooks* hooks) {
  gHooks = hooks;
  logLine("attach version=%d", hooks ? hooks->version : 0);
}
#endif

#if defined(STANDIN_CUDNN)
// ---------------------------------------------------------------------------------------- cuDNN ----
namespace alexnet {
namespace cuda {
namespace vendor {
struct cudnnContext { void* stream = nullptr; };
struct cudnnTensorStruct { int n = 0, c = 0, h = 0, w = 0; };
struct cudnnFilterStruct { int k = 0, c = 0, r = 0, s = 0; };
struct cudnnConvolutionStruct { int padH = 0, padW = 0, strideH = 1, strideW = 1, groups = 1, math = CUDNN_DEFAULT_MATH; };
}  // namespace vendor
}  // namespace cuda
}  // namespace alexnet

namespace {
std::atomic<int> gRuns[3];
const char* const kOps[3] = {"conv2dForward", "conv2dBackwardData", "conv2dBackwardFilter"};

/** The workspace each algorithm asks for (algo a: a * 8 KiB), so the engine's sizing is observable. */
size_t need(int algo) { return (size_t)algo * 8192; }

struct Geo {
  int n, c, h, w, k, r, s, sh, sw, ph, pw, g, oh, ow;
  bool tf;
};
Geo geo(const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* cv) {
  Geo g{x->n, x->c, x->h, x->w, w->k, w->r, w->s, cv->strideH, cv->strideW, cv->padH, cv->padW, cv->groups, 0, 0,
        cv->math != CUDNN_FMA_MATH};
  g.oh = (g.h + 2 * g.ph - g.r) / g.sh + 1;
  g.ow = (g.w + 2 * g.pw - g.s) / g.sw + 1;
  return g;
}
bool consistent(const Geo& g, const cudnnTensorStruct* y, const cudnnFilterStruct* w) {
  return g.g > 0 && g.c % g.g == 0 && g.k % g.g == 0 && w->c == g.c / g.g && y->n == g.n && y->c == g.k && y->h == g.oh &&
         y->w == g.ow;
}

struct ConvJob {
  int pass;  // 0 forward, 1 data, 2 filter
  Geo g;
  const float *a, *b;  // forward: x, w; data: w, dy; filter: x, dy
  float* out;
  float alpha, beta;
  bool wrong;
  void* ws;
  size_t wsBytes;
  void run() {
    if (ws && wsBytes) memset(ws, 0xA5, wsBytes);  // the workspace is scratch: the engine must not rely on it
    const int cg = g.c / g.g, kg = g.k / g.g;
    auto in = [&](float v) { return g.tf ? tf32(v) : v; };
    auto X = [&](const float* x, int i, int ch, int iy, int ix) { return x[(((size_t)i * g.c + ch) * g.h + iy) * g.w + ix]; };
    auto W = [&](const float* w, int o, int ci, int ky, int kx) { return w[(((size_t)o * cg + ci) * g.r + ky) * g.s + kx]; };
    auto Y = [&](int i, int o, int oy, int ox) { return (((size_t)i * g.k + o) * g.oh + oy) * g.ow + ox; };
    auto store = [&](float* p, double sum) { *p = (float)(alpha * sum + (beta != 0.f ? beta * *p : 0.0)) + (wrong ? 1.f : 0.f); };
    if (pass == 0) {
      for (int i = 0; i < g.n; ++i)
        for (int o = 0; o < g.k; ++o)
          for (int oy = 0; oy < g.oh; ++oy)
            for (int ox = 0; ox < g.ow; ++ox) {
              double sum = 0.0;
              const int grp = o / kg;
              for (int ci = 0; ci < cg; ++ci)
                for (int ky = 0; ky < g.r; ++ky)
                  for (int kx = 0; kx < g.s; ++kx) {
                    const int iy = oy * g.sh - g.ph + ky, ix = ox * g.sw - g.pw + kx;
                    if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                    sum += (double)in(X(a, i, grp * cg + ci, iy, ix)) * in(W(b, o, ci, ky, kx));
                  }
              store(out + Y(i, o, oy, ox), sum);
            }
    } else if (pass == 1) {
      for (int i = 0; i < g.n; ++i)
        for (int ch = 0; ch < g.c; ++ch)
          for (int iy = 0; iy < g.h; ++iy)
            for (int ix = 0; ix < g.w; ++ix) {
              double sum = 0.0;
              const int grp = ch / cg, ci = ch % cg;
              for (int o = grp * kg; o < (grp + 1) * kg; ++o)
                for (int ky = 0; ky < g.r; ++ky)
                  for (int kx = 0; kx < g.s; ++kx) {
                    const int ty = iy + g.ph - ky, tx = ix + g.pw - kx;
                    if (ty < 0 || tx < 0 || ty % g.sh || tx % g.sw) continue;
                    const int oy = ty / g.sh, ox = tx / g.sw;
                    if (oy >= g.oh || ox >= g.ow) continue;
                    sum += (double)in(W(a, o, ci, ky, kx)) * in(b[Y(i, o, oy, ox)]);
                  }
              store(out + (((size_t)i * g.c + ch) * g.h + iy) * g.w + ix, sum);
            }
    } else {
      for (int o = 0; o < g.k; ++o)
        for (int ci = 0; ci < cg; ++ci)
          for (int ky = 0; ky < g.r; ++ky)
            for (int kx = 0; kx < g.s; ++kx) {
              double sum = 0.0;
              const int grp = o / kg;
              for (int i = 0; i < g.n; ++i)
                for (int oy = 0; oy < g.oh; ++oy)
                  for (int ox = 0; ox < g.ow; ++ox) {
                    const int iy = oy * g.sh - g.ph + ky, ix = ox * g.sw - g.pw + kx;
                    if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                    sum += (double)in(X(a, i, grp * cg + ci, iy, ix)) * in(b[Y(i, o, oy, ox)]);
                  }
              store(out + (((size_t)o * cg + ci) * g.r + ky) * g.s + kx, sum);
            }
    }
  }
};

/** The search's results: two algorithms, the faster one needing workspace; the filter gradient's fastest is not deterministic. */
template <class Perf>
cudnnStatus_t perfs(int pass, const Geo& g, size_t wsBytes, int requested, int* returned, Perf* perf) {
  struct Cand { int algo; float time; cudnnDeterminism_t det; };
  const Cand cands[3][3] = {{{1, 0.5f, CUDNN_DETERMINISTIC}, {0, 1.0f, CUDNN_DETERMINISTIC}, {0, 0, 0}},
                            {{1, 0.4f, CUDNN_DETERMINISTIC}, {0, 0.9f, CUDNN_NON_DETERMINISTIC}, {0, 0, 0}},
                            {{0, 0.3f, CUDNN_NON_DETERMINISTIC}, {3, 0.5f, CUDNN_DETERMINISTIC}, {1, 0.7f, CUDNN_DETERMINISTIC}}};
  int n = 0;
  for (const Cand& c : cands[pass]) {
    if (c.time == 0.f || n >= requested) continue;
    if (need(c.algo) > wsBytes) continue;  // as cuDNN: only what fits the workspace given
    Perf p{};
    p.algo = c.algo;
    p.status = CUDNN_STATUS_SUCCESS;
    p.time = c.time;
    p.memory = need(c.algo);
    p.determinism = c.det;
    p.mathType = g.tf ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
    perf[n++] = p;
  }
  *returned = n;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t convRun(int pass, cudnnHandle_t h, const void* alpha, const Geo& g, const float* a, const float* b, int algo,
                      void* ws, size_t wsBytes, const void* beta, float* out) {
  if (wsBytes < need(algo) || (need(algo) && !ws)) {
    logLine("%s BAD workspace %zu < %zu", kOps[pass], wsBytes, need(algo));
    return CUDNN_STATUS_BAD_PARAM;
  }
  auto* j = new ConvJob{pass, g, a, b, out, *static_cast<const float*>(alpha), *static_cast<const float*>(beta),
                        wrongNow(kOps[pass], gRuns[pass]), ws, need(algo)};
  logLine("%s n=%d c=%d h=%d w=%d k=%d r=%d s=%d g=%d algo=%d ws=%zu math=%s beta=%g%s", kOps[pass], g.n, g.c, g.h, g.w, g.k, g.r,
          g.s, g.g, algo, wsBytes, g.tf ? "tf32" : "fma", j->beta, j->wrong ? " WRONG" : "");
  return enqueue(h->stream, j) ? CUDNN_STATUS_EXECUTION_FAILED : CUDNN_STATUS_SUCCESS;
}
}  // namespace

extern "C" {
size_t cudnnGetVersion() {
  const std::string v = env("ALEXNET_STANDIN_CUDNN_VERSION");
  return v.empty() ? 90600 : (size_t)atol(v.c_str());
}
const char* cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED (stand-in)";
    default: return "CUDNN_STATUS_(stand-in error)";
  }
}
cudnnStatus_t cudnnCreate(cudnnHandle_t* h) {
  logLine("cudnnCreate");
  if (failing("cudnnCreate")) return CUDNN_STATUS_NOT_INITIALIZED;
  *h = new cudnnContext();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) { delete h; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) { h->stream = s; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) { *d = new cudnnTensorStruct(); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n, int c, int h, int w) {
  if (f != CUDNN_TENSOR_NCHW || t != CUDNN_DATA_FLOAT || n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  *d = cudnnTensorStruct{n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) { *d = new cudnnFilterStruct(); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k, int c, int h, int w) {
  if (f != CUDNN_TENSOR_NCHW || t != CUDNN_DATA_FLOAT || k <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  *d = cudnnFilterStruct{k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) { *d = new cudnnConvolutionStruct(); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int padH, int padW, int u, int v, int dh, int dw,
                                              cudnnConvolutionMode_t mode, cudnnDataType_t t) {
  if (dh != 1 || dw != 1 || mode != CUDNN_CROSS_CORRELATION || t != CUDNN_DATA_FLOAT || u <= 0 || v <= 0) return CUDNN_STATUS_BAD_PARAM;
  d->padH = padH, d->padW = padW, d->strideH = u, d->strideW = v;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int g) {
  if (g <= 0) return CUDNN_STATUS_BAD_PARAM;
  d->groups = g;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) { d->math = m; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t,
                                                      cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t, int algo, size_t* b) {
  *b = need(algo);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, cudnnFilterDescriptor_t, cudnnTensorDescriptor_t,
                                                           cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t, int algo, size_t* b) {
  *b = need(algo);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t, cudnnTensorDescriptor_t,
                                                             cudnnConvolutionDescriptor_t, cudnnFilterDescriptor_t, int algo, size_t* b) {
  *b = need(algo);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t, cudnnTensorDescriptor_t x, const void*, cudnnFilterDescriptor_t w,
                                                     const void*, cudnnConvolutionDescriptor_t cv, cudnnTensorDescriptor_t y, void*,
                                                     int requested, int* returned, cudnnConvolutionFwdAlgoPerf_t* perf, void*,
                                                     size_t wsBytes) {
  const Geo g = geo(x, w, cv);
  if (!consistent(g, y, w)) return CUDNN_STATUS_BAD_PARAM;
  logLine("find conv2dForward n=%d c=%d k=%d g=%d ws=%zu math=%s", g.n, g.c, g.k, g.g, wsBytes, g.tf ? "tf32" : "fma");
  return perfs(0, g, wsBytes, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t, cudnnFilterDescriptor_t w, const void*, cudnnTensorDescriptor_t dy,
                                                          const void*, cudnnConvolutionDescriptor_t cv, cudnnTensorDescriptor_t dx, void*,
                                                          int requested, int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf, void*,
                                                          size_t wsBytes) {
  const Geo g = geo(dx, w, cv);
  if (!consistent(g, dy, w)) return CUDNN_STATUS_BAD_PARAM;
  logLine("find conv2dBackwardData n=%d c=%d k=%d g=%d ws=%zu math=%s", g.n, g.c, g.k, g.g, wsBytes, g.tf ? "tf32" : "fma");
  return perfs(1, g, wsBytes, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnHandle_t, cudnnTensorDescriptor_t x, const void*, cudnnTensorDescriptor_t dy,
                                                            const void*, cudnnConvolutionDescriptor_t cv, cudnnFilterDescriptor_t dw, void*,
                                                            int requested, int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf,
                                                            void*, size_t wsBytes) {
  const Geo g = geo(x, dw, cv);
  if (!consistent(g, dy, dw)) return CUDNN_STATUS_BAD_PARAM;
  logLine("find conv2dBackwardFilter n=%d c=%d k=%d g=%d ws=%zu math=%s", g.n, g.c, g.k, g.g, wsBytes, g.tf ? "tf32" : "fma");
  return perfs(2, g, wsBytes, requested, returned, perf);
}
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t xd, const void* x,
                                      cudnnFilterDescriptor_t wd, const void* w, cudnnConvolutionDescriptor_t cv, int algo, void* ws,
                                      size_t wsBytes, const void* beta, cudnnTensorDescriptor_t yd, void* y) {
  const Geo g = geo(xd, wd, cv);
  if (!consistent(g, yd, wd)) return CUDNN_STATUS_BAD_PARAM;
  return convRun(0, h, alpha, g, (const float*)x, (const float*)w, algo, ws, wsBytes, beta, (float*)y);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, cudnnFilterDescriptor_t wd, const void* w,
                                           cudnnTensorDescriptor_t dyd, const void* dy, cudnnConvolutionDescriptor_t cv, int algo,
                                           void* ws, size_t wsBytes, const void* beta, cudnnTensorDescriptor_t dxd, void* dx) {
  const Geo g = geo(dxd, wd, cv);
  if (!consistent(g, dyd, wd)) return CUDNN_STATUS_BAD_PARAM;
  return convRun(1, h, alpha, g, (const float*)w, (const float*)dy, algo, ws, wsBytes, beta, (float*)dx);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t xd, const void* x,
                                             cudnnTensorDescriptor_t dyd, const void* dy, cudnnConvolutionDescriptor_t cv, int algo,
                                             void* ws, size_t wsBytes, const void* beta, cudnnFilterDescriptor_t dwd, void* dw) {
  const Geo g = geo(xd, dwd, cv);
  if (!consistent(g, dyd, dwd)) return CUDNN_STATUS_BAD_PARAM;
  return convRun(2, h, alpha, g, (const float*)x, (const float*)dy, algo, ws, wsBytes, beta, (float*)dw);
}
}  // extern "C"
#endif  // STANDIN_CUDNN

#if defined(STANDIN_CUBLASLT)
// ------------------------------------------------------------------------------------- cuBLASLt ----
namespace alexnet {
namespace cuda {
namespace vendor {
struct cublasLtContext { int unused = 0; };
}  // namespace vendor
}  // namespace cuda
}  // namespace alexnet
namespace {
std::atomic<int> gGemmRuns{0};
constexpr uint64_t kAlgoTag = 0x5eedULL;
constexpr size_t kNeed = 4096;  // the workspace every algorithm asks for

struct Desc { int compute, scale, transa = CUBLAS_OP_N, transb = CUBLAS_OP_N, epilogue = CUBLASLT_EPILOGUE_DEFAULT; const float* bias = nullptr; };
struct Layout { int type; uint64_t rows, cols; int64_t ld; };
static_assert(sizeof(Desc) <= sizeof(cublasLtMatmulDescOpaque_t), "Desc fits the opaque descriptor");
static_assert(sizeof(Layout) <= sizeof(cublasLtMatrixLayoutOpaque_t), "Layout fits the opaque descriptor");
Desc* D(cublasLtMatmulDesc_t d) { return reinterpret_cast<Desc*>(d); }
Layout* L(cublasLtMatrixLayout_t l) { return reinterpret_cast<Layout*>(l); }

/** op(A) is m x k, op(B) k x n, C and D m x n (column-major, as cuBLASLt). */
bool shapes(const Desc* d, const Layout* a, const Layout* b, const Layout* c, uint64_t* m, uint64_t* n, uint64_t* k) {
  *m = d->transa == CUBLAS_OP_T ? a->cols : a->rows;
  *k = d->transa == CUBLAS_OP_T ? a->rows : a->cols;
  const uint64_t kb = d->transb == CUBLAS_OP_T ? b->cols : b->rows;
  *n = d->transb == CUBLAS_OP_T ? b->rows : b->cols;
  return kb == *k && c->rows == *m && c->cols == *n && a->ld >= (int64_t)a->rows && b->ld >= (int64_t)b->rows &&
         c->ld >= (int64_t)c->rows && a->type == CUDA_R_32F && b->type == CUDA_R_32F && c->type == CUDA_R_32F;
}

struct GemmJob {
  Desc d;
  Layout a, b, c;
  const float *A, *B, *C;
  float* Dp;
  float alpha, beta;
  bool wrong;
  void* ws;
  void run() {
    memset(ws, 0x5A, kNeed);
    uint64_t m, n, k;
    shapes(&d, &a, &b, &c, &m, &n, &k);
    const bool tf = d.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    auto in = [&](float v) { return tf ? tf32(v) : v; };
    const bool bias = d.epilogue == CUBLASLT_EPILOGUE_BIAS || d.epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
    const bool relu = d.epilogue == CUBLASLT_EPILOGUE_RELU || d.epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
    std::vector<float> out((size_t)m * n);
    for (uint64_t j = 0; j < n; ++j)
      for (uint64_t i = 0; i < m; ++i) {
        double s = 0.0;
        for (uint64_t q = 0; q < k; ++q) {
          const float av = d.transa == CUBLAS_OP_T ? A[q + i * a.ld] : A[i + q * a.ld];
          const float bv = d.transb == CUBLAS_OP_T ? B[j + q * b.ld] : B[q + j * b.ld];
          s += (double)in(av) * in(bv);
        }
        double v = alpha * s + (beta != 0.f ? beta * (double)C[i + j * c.ld] : 0.0);
        if (bias) v += d.bias[i];
        if (relu) v = v > 0.0 ? v : 0.0;  // cuBLASLt's x := max(x, 0)
        out[i + j * m] = (float)v + (wrong ? 1.f : 0.f);
      }
    for (uint64_t j = 0; j < n; ++j)
      for (uint64_t i = 0; i < m; ++i) Dp[i + j * c.ld] = out[i + j * m];
  }
};
}  // namespace

extern "C" {
size_t cublasLtGetVersion() { return 120804; }
const char* cublasLtGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED (stand-in)";
    default: return "CUBLAS_STATUS_(stand-in error)";
  }
}
cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  logLine("cublasLtCreate");
  if (failing("cublasLtCreate")) return CUBLAS_STATUS_NOT_INITIALIZED;
  *h = new cublasLtContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
  if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32) return CUBLAS_STATUS_INVALID_VALUE;
  auto* o = new cublasLtMatmulDescOpaque_t();
  new (o) Desc{compute, scale};
  *d = o;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { delete d; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const void* buf, size_t bytes) {
  Desc* x = D(d);
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: if (bytes != 4) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&x->transa, buf, 4); break;
    case CUBLASLT_MATMUL_DESC_TRANSB: if (bytes != 4) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&x->transb, buf, 4); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: if (bytes != 4) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&x->epilogue, buf, 4); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: if (bytes != sizeof(void*)) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&x->bias, buf, sizeof(void*)); break;
    default: return CUBLAS_STATUS_INVALID_VALUE;
  }
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld) {
  auto* o = new cublasLtMatrixLayoutOpaque_t();
  new (o) Layout{t, rows, cols, ld};
  *l = o;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { delete l; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) { *p = new cublasLtMatmulPreferenceOpaque_t(); return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { delete p; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void* buf, size_t bytes) {
  if (attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES || bytes != 8) return CUBLAS_STATUS_INVALID_VALUE;
  memcpy(&p->data[0], buf, 8);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd, cublasLtMatmulPreference_t p,
                                              int requested, cublasLtMatmulHeuristicResult_t* res, int* returned) {
  uint64_t m, n, k;
  const bool ok = shapes(D(d), L(a), L(b), L(c), &m, &n, &k) && L(dd)->rows == m && L(dd)->cols == n;
  logLine("heuristic m=%llu n=%llu k=%llu transa=%d transb=%d epilogue=%d compute=%d maxws=%llu%s", (unsigned long long)m,
          (unsigned long long)n, (unsigned long long)k, D(d)->transa, D(d)->transb, D(d)->epilogue, D(d)->compute,
          (unsigned long long)p->data[0], ok ? "" : " INCONSISTENT");
  if (!ok) return CUBLAS_STATUS_INVALID_VALUE;
  if (requested < 1 || p->data[0] < kNeed) { *returned = 0; return CUBLAS_STATUS_SUCCESS; }
  memset(res, 0, sizeof *res);
  res->algo.data[0] = kAlgoTag;
  res->workspaceSize = kNeed;
  res->state = CUBLAS_STATUS_SUCCESS;
  res->wavesCount = 1.f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t d, const void* alpha, const void* A, cublasLtMatrixLayout_t a,
                              const void* B, cublasLtMatrixLayout_t b, const void* beta, const void* C, cublasLtMatrixLayout_t c,
                              void* Dp, cublasLtMatrixLayout_t dd, const cublasLtMatmulAlgo_t* algo, void* ws, size_t wsBytes,
                              cudaStream_t stream) {
  uint64_t m, n, k;
  if (!shapes(D(d), L(a), L(b), L(c), &m, &n, &k) || L(dd)->ld != L(c)->ld) return CUBLAS_STATUS_INVALID_VALUE;
  if (!algo || algo->data[0] != kAlgoTag || wsBytes < kNeed || !ws) {
    logLine("matmul BAD algo or workspace %zu", wsBytes);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const int epi = D(d)->epilogue;
  if ((epi == CUBLASLT_EPILOGUE_BIAS || epi == CUBLASLT_EPILOGUE_RELU_BIAS) && !D(d)->bias) return CUBLAS_STATUS_INVALID_VALUE;
  auto* j = new GemmJob{*D(d), *L(a), *L(b), *L(c), (const float*)A, (const float*)B, (const float*)C, (float*)Dp,
                        *static_cast<const float*>(alpha), *static_cast<const float*>(beta), wrongNow("gemm", gGemmRuns), ws};
  logLine("matmul m=%llu n=%llu k=%llu epilogue=%d compute=%d ws=%zu beta=%g%s", (unsigned long long)m, (unsigned long long)n,
          (unsigned long long)k, epi, D(d)->compute, wsBytes, j->beta, j->wrong ? " WRONG" : "");
  return enqueue(stream, j) ? 13 /* CUBLAS_STATUS_EXECUTION_FAILED */ : CUBLAS_STATUS_SUCCESS;
}
}  // extern "C"
#endif  // STANDIN_CUBLASLT
