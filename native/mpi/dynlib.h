// Run-time loading of NCCL and of the CUDA driver (dlopen, no link-time dependency): the search is
// driven by the caller's list of candidates (TypeScript builds it: ALEXNET_NCCL_PATH, the dynamic
// loader's paths, CUDA toolkit folders, Python site-packages), the first that loads and has every
// symbol is kept for the life of the process.
#pragma once

#include <string>
#include <vector>

#include "nccl_api.h"

namespace adist {

struct NcclLib {
  void* handle = nullptr;
  std::string path;
  int versionCode = 0;
  ncclGetVersion_t getVersion = nullptr;
  ncclGetUniqueId_t getUniqueId = nullptr;
  ncclCommInitRank_t commInitRank = nullptr;
  ncclCommDestroy_t commDestroy = nullptr;
  ncclGetErrorString_t getErrorString = nullptr;
  ncclAllReduce_t allReduce = nullptr;
  ncclBroadcast_t broadcast = nullptr;
  ncclGroupStart_t groupStart = nullptr;
  ncclGroupEnd_t groupEnd = nullptr;
};

struct LoadAttempt {
  std::string path;
  std::string error;
};

struct NcclProbe {
  bool found = false;
  std::string path;
  int versionCode = 0;
  std::vector<LoadAttempt> attempts;  // every candidate tried before (and including) the one that loaded
};

// Tries the candidates in order (a bare file name goes through the dynamic loader's search, an
// absolute path is opened as it is); the first usable library is kept process-wide and later calls
// return it without searching again. Call from the JavaScript thread.
NcclProbe ProbeNccl(const std::vector<std::string>& candidates);

// The loaded library, or nullptr before a successful ProbeNccl.
const NcclLib* Nccl();

std::string NcclErrorString(ncclResult_t r);

struct CudaDriver {
  void* handle = nullptr;
  std::string path;
  cuInit_t init = nullptr;
  cuDeviceGetCount_t deviceGetCount = nullptr;
  cuDeviceGet_t deviceGet = nullptr;
  cuDeviceGetName_t deviceGetName = nullptr;
  cuDevicePrimaryCtxRetain_t primaryCtxRetain = nullptr;
  cuDevicePrimaryCtxRelease_t primaryCtxRelease = nullptr;
  cuCtxSetCurrent_t ctxSetCurrent = nullptr;
  cuCtxSynchronize_t ctxSynchronize = nullptr;
  cuStreamCreate_t streamCreate = nullptr;
  cuStreamDestroy_t streamDestroy = nullptr;
  cuStreamSynchronize_t streamSynchronize = nullptr;
  cuMemAlloc_t memAlloc = nullptr;
  cuMemFree_t memFree = nullptr;
  cuMemcpyHtoD_t memcpyHtoD = nullptr;
  cuMemcpyDtoH_t memcpyDtoH = nullptr;
  cuGetErrorString_t getErrorString = nullptr;
};

// libcuda.so.1 (the driver, found through the dynamic loader), loaded once; nullptr and *error set
// when it is missing or lacks a symbol. Thread-safe.
const CudaDriver* LoadCudaDriver(std::string* error);

std::string CuErrorString(const CudaDriver* d, CUresult r);

}  // namespace adist
