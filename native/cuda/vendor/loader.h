// cuDNN and cuBLASLt loaded at run time (dlopen), once per process, from an ordered list of
// candidates that packages/cuda/src/libraries.ts builds (ALEXNET_CUDNN_PATH / ALEXNET_CUBLASLT_PATH,
// the dynamic loader, the CUDA toolkit folders, the nvidia/*/lib folders of Python site-packages).
// NCCL is only looked for (its version), to report it the way @alexnet/distributed loads it. No CUDA
// here: plain C++, compiled into both addons.
#pragma once
#include <string>
#include <vector>

#include "../../common/dynload.h"
#include "api.h"

namespace alexnet {
namespace cuda {
namespace vendor {

struct LibReport {
  bool found = false;
  std::string path;
  std::string version;      // "9.6.0"
  long long versionCode = 0;
  std::vector<dynload::Attempt> attempts;  // every candidate tried, in order
  std::vector<std::string> preloaded;      // libraries loaded beside it (cuDNN's sub-libraries, NVRTC)
  std::string note;                        // a failure after loading (e.g. a stand-in refused on a GPU)
};

struct CudnnApi {
  cudnnGetVersion_fn getVersion = nullptr;
  cudnnGetErrorString_fn getErrorString = nullptr;
  cudnnCreate_fn create = nullptr;
  cudnnDestroy_fn destroy = nullptr;
  cudnnSetStream_fn setStream = nullptr;
  cudnnCreateTensorDescriptor_fn createTensor = nullptr;
  cudnnSetTensor4dDescriptor_fn setTensor4d = nullptr;
  cudnnDestroyTensorDescriptor_fn destroyTensor = nullptr;
  cudnnCreateFilterDescriptor_fn createFilter = nullptr;
  cudnnSetFilter4dDescriptor_fn setFilter4d = nullptr;
  cudnnDestroyFilterDescriptor_fn destroyFilter = nullptr;
  cudnnCreateConvolutionDescriptor_fn createConv = nullptr;
  cudnnSetConvolution2dDescriptor_fn setConv2d = nullptr;
  cudnnSetConvolutionGroupCount_fn setGroupCount = nullptr;
  cudnnSetConvolutionMathType_fn setMathType = nullptr;
  cudnnDestroyConvolutionDescriptor_fn destroyConv = nullptr;
  cudnnGetConvolutionForwardWorkspaceSize_fn fwdWorkspace = nullptr;
  cudnnGetConvolutionBackwardDataWorkspaceSize_fn bwdDataWorkspace = nullptr;
  cudnnGetConvolutionBackwardFilterWorkspaceSize_fn bwdFilterWorkspace = nullptr;
  cudnnFindConvolutionForwardAlgorithmEx_fn findFwd = nullptr;
  cudnnFindConvolutionBackwardDataAlgorithmEx_fn findBwdData = nullptr;
  cudnnFindConvolutionBackwardFilterAlgorithmEx_fn findBwdFilter = nullptr;
  cudnnConvolutionForward_fn forward = nullptr;
  cudnnConvolutionBackwardData_fn backwardData = nullptr;
  cudnnConvolutionBackwardFilter_fn backwardFilter = nullptr;
};

struct CublasLtApi {
  cublasLtGetVersion_fn getVersion = nullptr;
  cublasLtGetStatusString_fn getStatusString = nullptr;
  cublasLtCreate_fn create = nullptr;
  cublasLtDestroy_fn destroy = nullptr;
  cublasLtMatmulDescCreate_fn descCreate = nullptr;
  cublasLtMatmulDescDestroy_fn descDestroy = nullptr;
  cublasLtMatmulDescSetAttribute_fn descSet = nullptr;
  cublasLtMatrixLayoutCreate_fn layoutCreate = nullptr;
  cublasLtMatrixLayoutDestroy_fn layoutDestroy = nullptr;
  cublasLtMatmulPreferenceCreate_fn prefCreate = nullptr;
  cublasLtMatmulPreferenceDestroy_fn prefDestroy = nullptr;
  cublasLtMatmulPreferenceSetAttribute_fn prefSet = nullptr;
  cublasLtMatmulAlgoGetHeuristic_fn heuristic = nullptr;
  cublasLtMatmul_fn matmul = nullptr;
};

struct Candidates {
  std::vector<std::string> cudnn, cublasLt, nccl;
  /** Loaded (best effort) before cuDNN, so that its own dlopen of them by name succeeds: NVRTC, cuBLASLt of the other major. */
  std::vector<std::string> preload;
};

struct Libraries {
  bool loaded = false;  // loadLibraries has run
  LibReport cudnn, cublasLt, nccl;
  CudnnApi dnn;    // valid when cudnn.found
  CublasLtApi lt;  // valid when cublasLt.found
  bool standins = false;  // the emulated engine's stand-ins (attached to the emulated streams)
};

/**
 * Loads the libraries from `c` (the first call only: later calls return the first result, as a
 * library once loaded stays for the process). `hooks` non-null (the emulated engine): only stand-in
 * libraries that export alexnetStandinAttach are accepted, and attached to the emulation; null (the
 * GPU engine): libraries that export it are refused.
 */
const Libraries& loadLibraries(const Candidates& c, const StandinHooks* hooks);
/** The libraries once loadLibraries has run, else nullptr. */
const Libraries* libraries();

/** "9.6.0" from cudnnGetVersion's 90600; "12.6.4" from cublasLtGetVersion's 120604. */
std::string decodeVersion(long long code);

}  // namespace vendor
}  // namespace cuda
}  // namespace alexnet
