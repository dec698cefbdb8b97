// The vendor paths of the CUDA engine (included by engine.cu, once): convolutions through cuDNN 9's
// legacy API (forward, data gradient, filter gradient, with groups), dense GEMMs through cuBLASLt with
// the bias and ReLU in its epilogue. Per engine: one handle of each on the engine's stream, one plan
// per shape (descriptors and the algorithm found once with cudnnFind*Ex / the cuBLASLt heuristic), and
// the workspace from the engine's caching allocator. Trust but verify: the first run of each plan is
// checked against our own kernel on a slice (the first sample; the first rows; the whole filter
// gradient) and, beyond tolerance, the family falls back to our kernels with one warning.
// The same code runs in the emulated build against the tests' stand-in libraries (vendor/api.h).
#pragma once
#include <array>
#include <map>

#include "loader.h"

namespace alexnet {
namespace cuda {

namespace {

namespace vd = vendor;

#if defined(ALEXNET_CUDA_EMU)
#define ALEXNET_DEVICE_PREFIX "cuda-emu:"
#else
#define ALEXNET_DEVICE_PREFIX "cuda:"
#endif

bool debugOn() {
  static const bool on = [] {
    const char* e = getenv("ALEXNET_CUDA_DEBUG");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

/** Determinism of the cuDNN algorithms: deterministic only unless ALEXNET_CUDNN_DETERMINISTIC=0. */
bool deterministicOnly() {
  static const bool on = [] {
    const char* e = getenv("ALEXNET_CUDNN_DETERMINISTIC");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

constexpr size_t kFindWorkspaceCap = (size_t)1 << 30;     // the search's workspace, at most 1 GiB
constexpr size_t kLtWorkspace = (size_t)32 << 20;          // cuBLASLt's, 32 MiB (NVIDIA's advice for Hopper)
constexpr double kCheckTolStrict = 1e-3, kCheckTolTf32 = 2e-2;  // norm-wise relative, vendor vs ours

/** Process-wide state of an op family: a fallback (after a failed check or a handle that failed). */
struct FamilyState {
  std::atomic<bool> own{false};
  std::string reason;
};
FamilyState gFamily[kFamilies];
std::mutex gFamilyMutex;

const char* const kFamilyNames[kFamilies] = {"conv2dForward", "conv2dBackwardData", "conv2dBackwardFilter", "gemm"};

void fallBack(Family f, const std::string& why, bool warn) {
  std::lock_guard<std::mutex> l(gFamilyMutex);
  if (gFamily[f].own.load()) return;
  gFamily[f].reason = why;
  gFamily[f].own.store(true);
  count(kCountVendorFallbacks);
  if (warn) fprintf(stderr, "[@alexnet/cuda] WARNING: %s\n", why.c_str());
}

std::string describe(const ConvGeometry& g) {
  char b[160];
  snprintf(b, sizeof b, "[%lld,%lld,%lld,%lld] %lldx%lldx%lld s%lld p%lld g%lld", (long long)g.n, (long long)g.c,
           (long long)g.h, (long long)g.w, (long long)g.k, (long long)g.r, (long long)g.s, (long long)g.strideH,
           (long long)g.padH, (long long)g.groups);
  return b;
}

std::string fmtErr(double e) {
  char b[32];
  snprintf(b, sizeof b, "%.2e", e);
  return b;
}

}  // namespace

const char* familyName(Family f) { return kFamilyNames[f]; }

bool kernelsOwn() {
  static const bool own = [] {
    const char* e = getenv("ALEXNET_CUDA_KERNELS");
    return e && std::string(e) == "own";
  }();
  return own;
}

FamilyChoice familyChoice(Family f) {
  const bool conv = f != kGemm;
  const char* lib = conv ? "cudnn" : "cublasLt";
  const char* libName = conv ? "cuDNN" : "cuBLASLt";
  if (kernelsOwn()) return {"own", "ALEXNET_CUDA_KERNELS=own"};
  const vd::Libraries* libs = vd::libraries();
  if (!libs) return {"own", std::string(libName) + " was not looked for (no engine of this backend has started)"};
  const vd::LibReport& r = conv ? libs->cudnn : libs->cublasLt;
  if (!r.found) return {"own", std::string(libName) + " was not found (libraries()." + lib + " says where it looked)"};
  {
    std::lock_guard<std::mutex> l(gFamilyMutex);
    if (gFamily[f].own.load()) return {"own", gFamily[f].reason};
  }
  return {lib, ""};
}

struct VendorState {
  Engine& e;
  const vd::Libraries* libs;
  vd::cudnnHandle_t dnn = nullptr;
  bool dnnTried = false;
  vd::cublasLtHandle_t lt = nullptr;
  bool ltTried = false;
  BufPtr ws;  // the run-time workspace, grown as the plans need

  struct ConvPass {
    bool searched = false, usable = false, checked = false;
    int algo = 0, math = 0;
    size_t ws = 0;
  };
  struct ConvPlan {
    vd::cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    vd::cudnnFilterDescriptor_t w = nullptr;
    vd::cudnnConvolutionDescriptor_t conv = nullptr;
    bool ok = false;
    ConvPass pass[3][2];  // [family][TF32 allowed]
  };
  std::map<std::array<int64_t, 12>, ConvPlan> convPlans;

  struct GemmPlan {
    vd::cublasLtMatmulDesc_t desc = nullptr;
    vd::cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    vd::cublasLtMatmulAlgo_t algo{};
    size_t ws = 0;
    bool usable = false, checked = false;
  };
  std::map<std::array<int, 9>, GemmPlan> gemmPlans;

  VendorState(Engine& engine) : e(engine), libs(vd::libraries()) {}

  ~VendorState() {
    if (!libs) return;
    for (auto& kv : convPlans) {
      ConvPlan& p = kv.second;
      if (p.x) libs->dnn.destroyTensor(p.x);
      if (p.y) libs->dnn.destroyTensor(p.y);
      if (p.w) libs->dnn.destroyFilter(p.w);
      if (p.conv) libs->dnn.destroyConv(p.conv);
    }
    for (auto& kv : gemmPlans) {
      GemmPlan& p = kv.second;
      if (p.la) libs->lt.layoutDestroy(p.la);
      if (p.lb) libs->lt.layoutDestroy(p.lb);
      if (p.lc) libs->lt.layoutDestroy(p.lc);
      if (p.desc) libs->lt.descDestroy(p.desc);
    }
    if (dnn) libs->dnn.destroy(dnn);
    if (lt) libs->lt.destroy(lt);
  }

  std::string dnnError(vd::cudnnStatus_t s) const {
    const char* m = libs->dnn.getErrorString ? libs->dnn.getErrorString(s) : nullptr;
    return std::string(m ? m : "unknown cuDNN error") + " (cudnnStatus_t " + std::to_string(s) + ")";
  }
  std::string ltError(vd::cublasStatus_t s) const {
    const char* m = libs->lt.getStatusString ? libs->lt.getStatusString(s) : nullptr;
    return std::string(m ? m : "unknown cuBLAS error") + " (cublasStatus_t " + std::to_string(s) + ")";
  }

  void* workspace(size_t bytes) {
    if (!bytes) return nullptr;
    if (!ws || ws->capacity < bytes) {
      ws.reset();  // back to the cache, stream-ordered
      ws = e.allocRaw(kFloat32, (int64_t)((bytes + 3) / 4));
    }
    return ws->ptr;
  }

  // ---- availability ----
  bool cudnnReady(Family f) {
    if (kernelsOwn() || !libs || !libs->cudnn.found || gFamily[f].own.load()) return false;
    if (!dnnTried) {
      dnnTried = true;
      e.use();
      vd::cudnnStatus_t st = libs->dnn.create(&dnn);
      if (st == vd::CUDNN_STATUS_SUCCESS) st = libs->dnn.setStream(dnn, static_cast<vd::cudaStream_t>(e.stream_));
      if (st != vd::CUDNN_STATUS_SUCCESS) {
        if (dnn) libs->dnn.destroy(dnn);
        dnn = nullptr;
        const std::string why = std::string("cudnnCreate failed on ") + ALEXNET_DEVICE_PREFIX + std::to_string(e.index_) + ": " + dnnError(st);
        for (Family c : {kConvForward, kConvBackwardData, kConvBackwardFilter}) fallBack(c, why, c == kConvForward);  // one warning
      }
    }
    return dnn != nullptr && !gFamily[f].own.load();
  }

  bool ltReady() {
    if (kernelsOwn() || !libs || !libs->cublasLt.found || gFamily[kGemm].own.load()) return false;
    if (!ltTried) {
      ltTried = true;
      e.use();
      const vd::cublasStatus_t st = libs->lt.create(&lt);
      if (st != vd::CUBLAS_STATUS_SUCCESS) {
        lt = nullptr;
        fallBack(kGemm, std::string("cublasLtCreate failed on ") + ALEXNET_DEVICE_PREFIX + std::to_string(e.index_) + ": " + ltError(st), true);
      }
    }
    return lt != nullptr && !gFamily[kGemm].own.load();
  }

  // ---- convolutions ----
  ConvPlan* convPlan(const ConvGeometry& g) {
    const std::array<int64_t, 12> key{g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.strideH, g.strideW, g.padH, g.padW, g.groups};
    auto it = convPlans.find(key);
    if (it != convPlans.end()) return it->second.ok ? &it->second : nullptr;
    ConvPlan& p = convPlans[key];
    const vd::CudnnApi& d = libs->dnn;
    vd::cudnnStatus_t st = d.createTensor(&p.x);
    if (!st) st = d.setTensor4d(p.x, vd::CUDNN_TENSOR_NCHW, vd::CUDNN_DATA_FLOAT, (int)g.n, (int)g.c, (int)g.h, (int)g.w);
    if (!st) st = d.createTensor(&p.y);
    if (!st) st = d.setTensor4d(p.y, vd::CUDNN_TENSOR_NCHW, vd::CUDNN_DATA_FLOAT, (int)g.n, (int)g.k, (int)g.outH, (int)g.outW);
    if (!st) st = d.createFilter(&p.w);
    if (!st) st = d.setFilter4d(p.w, vd::CUDNN_DATA_FLOAT, vd::CUDNN_TENSOR_NCHW, (int)g.k, (int)g.cg(), (int)g.r, (int)g.s);
    if (!st) st = d.createConv(&p.conv);
    if (!st)
      st = d.setConv2d(p.conv, (int)g.padH, (int)g.padW, (int)g.strideH, (int)g.strideW, 1, 1, vd::CUDNN_CROSS_CORRELATION,
                       vd::CUDNN_DATA_FLOAT);
    if (!st) st = d.setGroupCount(p.conv, (int)g.groups);
    p.ok = st == vd::CUDNN_STATUS_SUCCESS;
    if (!p.ok && debugOn())
      fprintf(stderr, "[@alexnet/cuda] " ALEXNET_DEVICE_PREFIX "%d convolution %s: cuDNN refused the descriptors (%s): our kernels for this shape\n",
              e.index_, describe(g).c_str(), dnnError(st).c_str());
    return p.ok ? &p : nullptr;
  }

  /** The workspace the search may use: the most any algorithm asks for, within kFindWorkspaceCap. */
  template <class WsFn>
  size_t searchBytes(int algos, WsFn bytesOf) {
    size_t most = 0;
    for (int a = 0; a < algos; ++a) {
      size_t b = 0;
      if (bytesOf(a, &b) == vd::CUDNN_STATUS_SUCCESS && b > most) most = b;
    }
    return most > kFindWorkspaceCap ? kFindWorkspaceCap : most;
  }

  /** A one-off workspace block for a search, freed to the driver afterwards (halved until it fits). */
  BufPtr searchWorkspace(size_t* bytes) {
    while (*bytes) {
      try {
        BufPtr b = e.allocRaw(kFloat32, (int64_t)((*bytes + 3) / 4));
        b->discard = true;
        return b;
      } catch (const std::exception&) {
        *bytes /= 2;
      }
    }
    return nullptr;
  }

  /** Picks the fastest (deterministic, unless allowed otherwise) algorithm of a search's results. */
  template <class Perf>
  void choose(ConvPass& pass, const Perf* perf, int returned, size_t wsBytes, bool tf32, Family f, const ConvGeometry& g) {
    pass.searched = true;
    count(kCountCudnnFind);
    for (int i = 0; i < returned; ++i) {
      const Perf& r = perf[i];
      if (r.status != vd::CUDNN_STATUS_SUCCESS || r.memory > wsBytes) continue;
      if (deterministicOnly() && r.determinism != vd::CUDNN_DETERMINISTIC) continue;
      pass.usable = true;
      pass.algo = r.algo;
      pass.math = tf32 ? r.mathType : vd::CUDNN_FMA_MATH;
      pass.ws = r.memory;
      break;
    }
    if (debugOn()) {
      if (pass.usable)
        fprintf(stderr, "[@alexnet/cuda] " ALEXNET_DEVICE_PREFIX "%d %s %s: cuDNN algo %d (%.3f ms in the search, workspace %zu bytes, %s)\n", e.index_,
                familyName(f), describe(g).c_str(), pass.algo, (double)perf[0].time, pass.ws,
                tf32 ? "TF32 allowed" : "strict FP32");
      else
        fprintf(stderr, "[@alexnet/cuda] " ALEXNET_DEVICE_PREFIX "%d %s %s: no cuDNN algorithm qualified: our kernels for this shape\n", e.index_,
                familyName(f), describe(g).c_str());
    }
  }

  /** After the first run of a pass: the vendor's result against ours; false (and the family falls back) beyond tolerance. */
  bool verdict(ConvPass& pass, Family f, const ConvGeometry& g, double err, bool tf32, const char* slice) {
    const double tol = tf32 ? kCheckTolTf32 : kCheckTolStrict;
    count(kCountVendorChecks);
    if (err <= tol) {
      pass.checked = true;
      if (debugOn())
        fprintf(stderr, "[@alexnet/cuda] " ALEXNET_DEVICE_PREFIX "%d %s %s: cuDNN checked against our kernel on %s: relative error %s\n", e.index_,
                familyName(f), describe(g).c_str(), slice, fmtErr(err).c_str());
      return true;
    }
    fallBack(f, std::string("cuDNN's ") + familyName(f) + " (algo " + std::to_string(pass.algo) + ") disagreed with our kernel on " +
                    describe(g) + " (" + slice + "): relative error " + fmtErr(err) + " > " + fmtErr(tol) + "; " +
                    familyName(f) + " runs on our kernels from now on",
             true);
    return false;
  }

  bool convForward(const float* x, const float* w, const float* bias, float* y, const ConvGeometry& g, bool relu) {
    if (!cudnnReady(kConvForward)) return false;
    ConvPlan* p = convPlan(g);
    if (!p) return false;
    const bool tf32 = gPrecision.convTf32;
    ConvPass& pass = p->pass[kConvForward][tf32];
    const vd::CudnnApi& d = libs->dnn;
    if (!pass.searched) {
      d.setMathType(p->conv, tf32 ? vd::CUDNN_DEFAULT_MATH : vd::CUDNN_FMA_MATH);
      size_t bytes = searchBytes(vd::CUDNN_CONVOLUTION_FWD_ALGO_COUNT, [&](int a, size_t* b) {
        return d.fwdWorkspace(dnn, p->x, p->w, p->conv, p->y, a, b);
      });
      BufPtr sws = searchWorkspace(&bytes);
      vd::cudnnConvolutionFwdAlgoPerf_t perf[vd::CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      int returned = 0;
      const vd::cudnnStatus_t st = d.findFwd(dnn, p->x, x, p->w, w, p->conv, p->y, y, vd::CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                             &returned, perf, sws ? sws->ptr : nullptr, bytes);
      if (st != vd::CUDNN_STATUS_SUCCESS) returned = 0;
      choose(pass, perf, returned, bytes, tf32, kConvForward, g);
    }
    if (!pass.usable) return false;
    d.setMathType(p->conv, pass.math);
    const float one = 1.f, zero = 0.f;
    const vd::cudnnStatus_t st = d.forward(dnn, &one, p->x, x, p->w, w, p->conv, pass.algo, workspace(pass.ws), pass.ws,
                                           &zero, p->y, y);
    if (st != vd::CUDNN_STATUS_SUCCESS) throw std::runtime_error("cudnnConvolutionForward failed: " + dnnError(st));
    count(kCountCudnnCalls);
    if (!pass.checked) {
      ConvGeometry g1 = g;
      g1.n = 1;
      BufPtr ref = e.scratch(g1.ySize());
      e.ownConvForward(x, w, nullptr, ref->f32(), g1, false);
      if (!verdict(pass, kConvForward, g, e.compareRaw(y, ref->f32(), g1.ySize()), tf32, "the first sample")) {
        e.ownConvForward(x, w, bias, y, g, relu);
        return true;
      }
    }
    e.biasAct(y, bias, relu, (int)g.n, (int)g.k, (int)g.plane());
    return true;
  }

  bool convBackwardData(const float* dy, const float* w, float* dx, const ConvGeometry& g) {
    if (!cudnnReady(kConvBackwardData)) return false;
    ConvPlan* p = convPlan(g);
    if (!p) return false;
    const bool tf32 = gPrecision.convTf32;
    ConvPass& pass = p->pass[kConvBackwardData][tf32];
    const vd::CudnnApi& d = libs->dnn;
    if (!pass.searched) {
      d.setMathType(p->conv, tf32 ? vd::CUDNN_DEFAULT_MATH : vd::CUDNN_FMA_MATH);
      size_t bytes = searchBytes(vd::CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, [&](int a, size_t* b) {
        return d.bwdDataWorkspace(dnn, p->w, p->y, p->conv, p->x, a, b);
      });
      BufPtr sws = searchWorkspace(&bytes);
      vd::cudnnConvolutionBwdDataAlgoPerf_t perf[vd::CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      int returned = 0;
      const vd::cudnnStatus_t st = d.findBwdData(dnn, p->w, w, p->y, dy, p->conv, p->x, dx,
                                                 vd::CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, perf,
                                                 sws ? sws->ptr : nullptr, bytes);
      if (st != vd::CUDNN_STATUS_SUCCESS) returned = 0;
      choose(pass, perf, returned, bytes, tf32, kConvBackwardData, g);
    }
    if (!pass.usable) return false;
    d.setMathType(p->conv, pass.math);
    const float one = 1.f, zero = 0.f;
    const vd::cudnnStatus_t st = d.backwardData(dnn, &one, p->w, w, p->y, dy, p->conv, pass.algo, workspace(pass.ws), pass.ws,
                                                &zero, p->x, dx);
    if (st != vd::CUDNN_STATUS_SUCCESS) throw std::runtime_error("cudnnConvolutionBackwardData failed: " + dnnError(st));
    count(kCountCudnnCalls);
    if (!pass.checked) {
      ConvGeometry g1 = g;
      g1.n = 1;
      BufPtr ref = e.scratch(g1.xSize());
      e.ownConvBackwardData(dy, w, ref->f32(), g1);
      if (!verdict(pass, kConvBackwardData, g, e.compareRaw(dx, ref->f32(), g1.xSize()), tf32, "the first sample"))
        e.ownConvBackwardData(dy, w, dx, g);
    }
    return true;
  }

  bool convBackwardFilter(const float* x, const float* dy, float* dw, const ConvGeometry& g, float beta) {
    if (!cudnnReady(kConvBackwardFilter)) return false;
    ConvPlan* p = convPlan(g);
    if (!p) return false;
    const bool tf32 = gPrecision.convTf32;
    ConvPass& pass = p->pass[kConvBackwardFilter][tf32];
    const vd::CudnnApi& d = libs->dnn;
    if (!pass.searched) {
      d.setMathType(p->conv, tf32 ? vd::CUDNN_DEFAULT_MATH : vd::CUDNN_FMA_MATH);
      size_t bytes = searchBytes(vd::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, [&](int a, size_t* b) {
        return d.bwdFilterWorkspace(dnn, p->x, p->y, p->conv, p->w, a, b);
      });
      BufPtr sws = searchWorkspace(&bytes);
      BufPtr out = e.scratch(g.wSize());  // the search writes its output: not into dw, which may be accumulated into
      vd::cudnnConvolutionBwdFilterAlgoPerf_t perf[vd::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      int returned = 0;
      const vd::cudnnStatus_t st = d.findBwdFilter(dnn, p->x, x, p->y, dy, p->conv, p->w, out->f32(),
                                                   vd::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, perf,
                                                   sws ? sws->ptr : nullptr, bytes);
      if (st != vd::CUDNN_STATUS_SUCCESS) returned = 0;
      choose(pass, perf, returned, bytes, tf32, kConvBackwardFilter, g);
    }
    if (!pass.usable) return false;
    BufPtr ref;
    if (!pass.checked) {  // ours on the whole gradient (it sums over every sample), from the same dw when accumulating
      ref = e.scratch(g.wSize());
      if (beta != 0.f) e.copyRaw(ref->ptr, dw, (size_t)g.wSize() * 4);
    }
    d.setMathType(p->conv, pass.math);
    const float one = 1.f;
    const vd::cudnnStatus_t st = d.backwardFilter(dnn, &one, p->x, x, p->y, dy, p->conv, pass.algo, workspace(pass.ws), pass.ws,
                                                  &beta, p->w, dw);
    if (st != vd::CUDNN_STATUS_SUCCESS) throw std::runtime_error("cudnnConvolutionBackwardFilter failed: " + dnnError(st));
    count(kCountCudnnCalls);
    if (ref) {
      e.ownConvBackwardFilter(x, dy, ref->f32(), g, beta);
      if (!verdict(pass, kConvBackwardFilter, g, e.compareRaw(dw, ref->f32(), g.wSize()), tf32, "the whole gradient"))
        e.copyRaw(dw, ref->ptr, (size_t)g.wSize() * 4);
    }
    return true;
  }

  // ---- GEMM (row-major C = alpha op(A) op(B) + beta C, then + bias[column], then ReLU) ----
  bool gemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* a, const float* b, float beta, float* c,
            const float* bias, bool relu) {
    if (!ltReady() || k <= 0) return false;
    const bool tf32 = gPrecision.matmulTf32;
    const std::array<int, 9> key{transA, transB, m, n, k, bias != nullptr, relu, tf32, beta != 0.f};
    const vd::CublasLtApi& L = libs->lt;
    auto it = gemmPlans.find(key);
    GemmPlan* p;
    if (it == gemmPlans.end()) {
      p = &gemmPlans[key];
      // Row-major C [m, n] is column-major C^T [n, m] = op(B)^T op(A)^T: cuBLASLt's A is our B, its B our A.
      vd::cublasStatus_t st = L.descCreate(&p->desc, tf32 ? vd::CUBLAS_COMPUTE_32F_FAST_TF32 : vd::CUBLAS_COMPUTE_32F, vd::CUDA_R_32F);
      const int32_t opA = transB ? vd::CUBLAS_OP_T : vd::CUBLAS_OP_N, opB = transA ? vd::CUBLAS_OP_T : vd::CUBLAS_OP_N;
      const uint32_t epi = bias ? (relu ? vd::CUBLASLT_EPILOGUE_RELU_BIAS : vd::CUBLASLT_EPILOGUE_BIAS)
                                : (relu ? vd::CUBLASLT_EPILOGUE_RELU : vd::CUBLASLT_EPILOGUE_DEFAULT);
      if (!st) st = L.descSet(p->desc, vd::CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA);
      if (!st) st = L.descSet(p->desc, vd::CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB);
      if (!st) st = L.descSet(p->desc, vd::CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
      if (!st) st = transB ? L.layoutCreate(&p->la, vd::CUDA_R_32F, k, n, k) : L.layoutCreate(&p->la, vd::CUDA_R_32F, n, k, n);
      if (!st) st = transA ? L.layoutCreate(&p->lb, vd::CUDA_R_32F, m, k, m) : L.layoutCreate(&p->lb, vd::CUDA_R_32F, k, m, k);
      if (!st) st = L.layoutCreate(&p->lc, vd::CUDA_R_32F, n, m, n);
      vd::cublasLtMatmulPreference_t pref = nullptr;
      if (!st) st = L.prefCreate(&pref);
      const uint64_t maxWs = kLtWorkspace;
      if (!st) st = L.prefSet(pref, vd::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &maxWs, sizeof maxWs);
      vd::cublasLtMatmulHeuristicResult_t res{};
      int returned = 0;
      if (!st) st = L.heuristic(lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &returned);
      if (pref) L.prefDestroy(pref);
      count(kCountCublasLtHeuristic);
      p->usable = st == vd::CUBLAS_STATUS_SUCCESS && returned > 0 && res.state == vd::CUBLAS_STATUS_SUCCESS;
      p->algo = res.algo;
      p->ws = res.workspaceSize;
      if (debugOn())
        fprintf(stderr, "[@alexnet/cuda] " ALEXNET_DEVICE_PREFIX "%d gemm %c%c %dx%dx%d%s%s: %s\n", e.index_, transA ? 'T' : 'N', transB ? 'T' : 'N', m,
                n, k, bias ? " +bias" : "", relu ? " +relu" : "",
                p->usable ? ("cuBLASLt (workspace " + std::to_string(p->ws) + " bytes, " + (tf32 ? "TF32" : "strict FP32") + ")").c_str()
                          : ("no cuBLASLt algorithm (" + ltError(st) + "): our kernels for this shape").c_str());
    } else {
      p = &it->second;
    }
    if (!p->usable) return false;
    BufPtr saved, ref;
    const int rows = m < 16 ? m : 16;
    if (!p->checked) {
      ref = e.scratch((int64_t)rows * n);
      if (beta != 0.f) {  // C is an input: keep it, for our kernel's check and for a fallback
        saved = e.scratch((int64_t)m * n);
        e.copyRaw(saved->ptr, c, (size_t)m * n * 4);
        e.copyRaw(ref->ptr, c, (size_t)rows * n * 4);
      }
    }
    if (bias) {
      const vd::cublasStatus_t st = L.descSet(p->desc, vd::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
      if (st) throw std::runtime_error("cublasLtMatmulDescSetAttribute (bias) failed: " + ltError(st));
    }
    const vd::cublasStatus_t st = L.matmul(lt, p->desc, &alpha, b, p->la, a, p->lb, &beta, c, p->lc, c, p->lc, &p->algo,
                                           workspace(p->ws), p->ws, static_cast<vd::cudaStream_t>(e.stream_));
    if (st != vd::CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasLtMatmul failed: " + ltError(st));
    count(kCountCublasLtCalls);
    if (ref) {
      e.ownGemm(transA, transB, rows, n, k, alpha, a, transA ? m : k, b, transB ? k : n, beta, ref->f32(), bias, relu);
      const double err = e.compareRaw(c, ref->f32(), (long long)rows * n), tol = tf32 ? kCheckTolTf32 : kCheckTolStrict;
      count(kCountVendorChecks);
      char shape[96];
      snprintf(shape, sizeof shape, "%c%c %dx%dx%d", transA ? 'T' : 'N', transB ? 'T' : 'N', m, n, k);
      if (err <= tol) {
        p->checked = true;
        if (debugOn())
          fprintf(stderr, "[@alexnet/cuda] " ALEXNET_DEVICE_PREFIX "%d gemm %s: cuBLASLt checked against our kernel on the first %d rows: relative error %s\n",
                  e.index_, shape, rows, fmtErr(err).c_str());
      } else {
        fallBack(kGemm, std::string("cuBLASLt's gemm ") + shape + " disagreed with our kernel (the first " + std::to_string(rows) +
                            " rows): relative error " + fmtErr(err) + " > " + fmtErr(tol) + "; gemm runs on our kernels from now on",
                 true);
        if (saved) e.copyRaw(c, saved->ptr, (size_t)m * n * 4);
        e.ownGemm(transA, transB, m, n, k, alpha, a, transA ? m : k, b, transB ? k : n, beta, c, bias, relu);
      }
    }
    return true;
  }
};

VendorState* Engine::vendorState() {
  if (!vendor_) vendor_.reset(new VendorState(*this));
  if (!vendor_->libs) vendor_->libs = vd::libraries();  // loaded after this engine started
  return vendor_.get();
}

}  // namespace cuda
}  // namespace alexnet
