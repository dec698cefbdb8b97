// See loader.h.
#include "loader.h"

#include <mutex>

namespace alexnet {
namespace cuda {
namespace vendor {

namespace {

std::mutex gMutex;
Libraries gLibs;

/** The stand-in rule: the emulated engine takes only stand-ins, the GPU engine never. */
bool standinRule(void* h, const StandinHooks* hooks, std::string* why) {
  const bool standin = dlsym(h, kStandinSymbol) != nullptr;
  if (hooks && !standin) {
    *why = "loaded, but it is not a stand-in for the emulated engine (cuda-emu runs NVIDIA's libraries never: they would be "
           "handed host memory)";
    return false;
  }
  if (!hooks && standin) {
    *why = "loaded, but it is a stand-in for the emulated engine (packages/cuda/test/standin), not NVIDIA's library";
    return false;
  }
  return true;
}

bool resolveCudnn(void* h, CudnnApi* d, std::string* missing) {
  using dynload::sym;
  sym(h, "cudnnGetVersion", &d->getVersion, missing);
  sym(h, "cudnnGetErrorString", &d->getErrorString, missing);
  sym(h, "cudnnCreate", &d->create, missing);
  sym(h, "cudnnDestroy", &d->destroy, missing);
  sym(h, "cudnnSetStream", &d->setStream, missing);
  sym(h, "cudnnCreateTensorDescriptor", &d->createTensor, missing);
  sym(h, "cudnnSetTensor4dDescriptor", &d->setTensor4d, missing);
  sym(h, "cudnnDestroyTensorDescriptor", &d->destroyTensor, missing);
  sym(h, "cudnnCreateFilterDescriptor", &d->createFilter, missing);
  sym(h, "cudnnSetFilter4dDescriptor", &d->setFilter4d, missing);
  sym(h, "cudnnDestroyFilterDescriptor", &d->destroyFilter, missing);
  sym(h, "cudnnCreateConvolutionDescriptor", &d->createConv, missing);
  sym(h, "cudnnSetConvolution2dDescriptor", &d->setConv2d, missing);
  sym(h, "cudnnSetConvolutionGroupCount", &d->setGroupCount, missing);
  sym(h, "cudnnSetConvolutionMathType", &d->setMathType, missing);
  sym(h, "cudnnDestroyConvolutionDescriptor", &d->destroyConv, missing);
  sym(h, "cudnnGetConvolutionForwardWorkspaceSize", &d->fwdWorkspace, missing);
  sym(h, "cudnnGetConvolutionBackwardDataWorkspaceSize", &d->bwdDataWorkspace, missing);
  sym(h, "cudnnGetConvolutionBackwardFilterWorkspaceSize", &d->bwdFilterWorkspace, missing);
  sym(h, "cudnnFindConvolutionForwardAlgorithmEx", &d->findFwd, missing);
  sym(h, "cudnnFindConvolutionBackwardDataAlgorithmEx", &d->findBwdData, missing);
  sym(h, "cudnnFindConvolutionBackwardFilterAlgorithmEx", &d->findBwdFilter, missing);
  sym(h, "cudnnConvolutionForward", &d->forward, missing);
  sym(h, "cudnnConvolutionBackwardData", &d->backwardData, missing);
  sym(h, "cudnnConvolutionBackwardFilter", &d->backwardFilter, missing);
  return missing->empty();
}

bool resolveCublasLt(void* h, CublasLtApi* l, std::string* missing) {
  using dynload::sym;
  sym(h, "cublasLtGetVersion", &l->getVersion, missing);
  sym(h, "cublasLtGetStatusString", &l->getStatusString, missing);
  sym(h, "cublasLtCreate", &l->create, missing);
  sym(h, "cublasLtDestroy", &l->destroy, missing);
  sym(h, "cublasLtMatmulDescCreate", &l->descCreate, missing);
  sym(h, "cublasLtMatmulDescDestroy", &l->descDestroy, missing);
  sym(h, "cublasLtMatmulDescSetAttribute", &l->descSet, missing);
  sym(h, "cublasLtMatrixLayoutCreate", &l->layoutCreate, missing);
  sym(h, "cublasLtMatrixLayoutDestroy", &l->layoutDestroy, missing);
  sym(h, "cublasLtMatmulPreferenceCreate", &l->prefCreate, missing);
  sym(h, "cublasLtMatmulPreferenceDestroy", &l->prefDestroy, missing);
  sym(h, "cublasLtMatmulPreferenceSetAttribute", &l->prefSet, missing);
  sym(h, "cublasLtMatmulAlgoGetHeuristic", &l->heuristic, missing);
  sym(h, "cublasLtMatmul", &l->matmul, missing);
  return missing->empty();
}

void attachStandin(void* h, const StandinHooks* hooks) {
  alexnetStandinAttach_fn attach = nullptr;
  dynload::sym(h, kStandinSymbol, &attach, nullptr);
  if (attach && hooks) attach(hooks);
}

/** dlopen of the libraries cuDNN 9's shim (libcudnn.so.9) loads by name, from its own folder, when there. */
void preloadCudnnParts(const std::string& dir, LibReport* r) {
  static const char* const kParts[] = {"libcudnn_graph.so.9",      "libcudnn_engines_precompiled.so.9",
                                       "libcudnn_engines_runtime_compiled.so.9", "libcudnn_heuristic.so.9",
                                       "libcudnn_ops.so.9",        "libcudnn_cnn.so.9"};
  for (const char* part : kParts) {
    const std::string p = dir + "/" + part;
    if (!dynload::fileExists(p)) continue;
    dlerror();
    if (dlopen(p.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
      r->preloaded.push_back(p);
    } else {
      const char* e = dlerror();
      r->note += (r->note.empty() ? "" : "; ") + std::string(part) + " did not load: " + (e ? e : "dlopen failed");
    }
  }
}

}  // namespace

std::string decodeVersion(long long code) {
  if (code <= 0) return "";
  // cuDNN 9, cuBLASLt and NCCL >= 2.9: major * 10000 + minor * 100 + patch
  return std::to_string(code / 10000) + "." + std::to_string((code / 100) % 100) + "." + std::to_string(code % 100);
}

const Libraries* libraries() {
  std::lock_guard<std::mutex> l(gMutex);
  return gLibs.loaded ? &gLibs : nullptr;
}

const Libraries& loadLibraries(const Candidates& c, const StandinHooks* hooks) {
  std::lock_guard<std::mutex> l(gMutex);
  if (gLibs.loaded) return gLibs;
  gLibs.loaded = true;
  gLibs.standins = hooks != nullptr;

  // cuBLASLt first: cuDNN's legacy convolutions dlopen it by name (NVIDIA's "Building and Running a
  // cuDNN Dependent Program"), which finds the one already loaded.
  {
    LibReport& r = gLibs.cublasLt;
    CublasLtApi api;
    void* h = dynload::openFirst(c.cublasLt, &r.attempts, [&](void* h, std::string* why) {
      if (!standinRule(h, hooks, why)) return false;
      std::string missing;
      api = CublasLtApi();
      if (!resolveCublasLt(h, &api, &missing)) { *why = "loaded, but it lacks " + missing + " (not cuBLASLt)"; return false; }
      const long long v = (long long)api.getVersion();
      if (v / 10000 < 11) { *why = "loaded, but it is cuBLASLt " + decodeVersion(v) + " (12 or newer is needed)"; return false; }
      r.versionCode = v;
      return true;
    }, &r.path);
    if (h) {
      r.found = true;
      r.version = decodeVersion(r.versionCode);
      gLibs.lt = api;
      if (hooks) attachStandin(h, hooks);
    }
  }
  for (const std::string& p : c.preload) {
    if (!dynload::fileExists(p)) continue;
    if (dlopen(p.c_str(), RTLD_NOW | RTLD_GLOBAL)) gLibs.cudnn.preloaded.push_back(p);
  }
  {
    LibReport& r = gLibs.cudnn;
    CudnnApi api;
    void* h = dynload::openFirst(c.cudnn, &r.attempts, [&](void* h, std::string* why) {
      if (!standinRule(h, hooks, why)) return false;
      std::string missing;
      api = CudnnApi();
      if (!resolveCudnn(h, &api, &missing)) {
        *why = "loaded, but it lacks " + missing + " (not cuDNN 9 with its legacy convolution API)";
        return false;
      }
      const long long v = (long long)api.getVersion();
      if (v / 10000 != 9) {
        *why = "loaded, but cudnnGetVersion() says " + std::to_string(v) + " (cuDNN 9 is needed)";
        return false;
      }
      r.versionCode = v;
      return true;
    }, &r.path);
    if (h) {
      r.found = true;
      r.version = decodeVersion(r.versionCode);
      gLibs.dnn = api;
      preloadCudnnParts(dynload::dirOf(r.path), &r);
      if (hooks) attachStandin(h, hooks);
    }
  }
  {
    LibReport& r = gLibs.nccl;
    void* h = dynload::openFirst(c.nccl, &r.attempts, [&](void* h, std::string* why) {
      // the functions @alexnet/distributed resolves (native/mpi/dynlib.cpp), so both say the same
      static const char* const kNeeded[] = {"ncclGetVersion", "ncclGetUniqueId", "ncclCommInitRank",
                                            "ncclCommDestroy", "ncclGetErrorString", "ncclAllReduce",
                                            "ncclBroadcast", "ncclGroupStart", "ncclGroupEnd"};
      std::string missing;
      for (const char* n : kNeeded) {
        void* p = nullptr;
        dynload::sym(h, n, &p, &missing);
      }
      if (!missing.empty()) { *why = "loaded, but it lacks " + missing + " (not an NCCL 2 library)"; return false; }
      ncclGetVersion_fn gv = nullptr;
      dynload::sym(h, "ncclGetVersion", &gv, nullptr);
      int code = 0;
      if (gv(&code) != 0 || code <= 0) { *why = "loaded, but ncclGetVersion failed"; return false; }
      r.versionCode = code;
      return true;
    }, &r.path);
    if (h) {
      r.found = true;
      const long long v = r.versionCode;
      r.version = v >= 10000 ? decodeVersion(v)
                             : std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 100) + "." + std::to_string(v % 100);
    }
  }
  return gLibs;
}

}  // namespace vendor
}  // namespace cuda
}  // namespace alexnet
