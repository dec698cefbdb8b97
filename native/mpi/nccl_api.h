// The few NCCL and CUDA driver API declarations that @alexnet/distributed uses, written here so the
// addon builds without NVIDIA's headers and loads both libraries at run time with dlopen (nothing of
// NVIDIA's is linked, vendored or shipped). The values are those of the public headers: nccl.h
// (NCCL 2.x: types, ops, result codes) and cuda.h (CUDA 11+: the _v2 entry points named below).
#pragma once

#include <cstddef>
#include <cstdint>

namespace adist {

// ---- NCCL (nccl.h) ----
struct ncclComm;
typedef ncclComm* ncclComm_t;

constexpr int NCCL_UNIQUE_ID_BYTES = 128;
struct ncclUniqueId { char internal[NCCL_UNIQUE_ID_BYTES]; };

typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
} ncclResult_t;

typedef enum {
  ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclUint32 = 3, ncclInt64 = 4, ncclUint64 = 5,
  ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9,
} ncclDataType_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

// cudaStream_t and CUstream are the same opaque pointer.
struct CUstream_st;
typedef CUstream_st* cudaStream_t;

typedef ncclResult_t (*ncclGetVersion_t)(int* version);
typedef ncclResult_t (*ncclGetUniqueId_t)(ncclUniqueId* uniqueId);
typedef ncclResult_t (*ncclCommInitRank_t)(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank);
typedef ncclResult_t (*ncclCommDestroy_t)(ncclComm_t comm);
typedef const char* (*ncclGetErrorString_t)(ncclResult_t result);
typedef ncclResult_t (*ncclAllReduce_t)(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                        ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
typedef ncclResult_t (*ncclBroadcast_t)(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                        int root, ncclComm_t comm, cudaStream_t stream);
typedef ncclResult_t (*ncclGroupStart_t)();
typedef ncclResult_t (*ncclGroupEnd_t)();

// NCCL_VERSION_CODE: X*10000 + Y*100 + Z from 2.9 on, X*1000 + Y*100 + Z before.
inline void DecodeNcclVersion(int code, int* major, int* minor, int* patch) {
  if (code >= 10000) { *major = code / 10000; *minor = (code % 10000) / 100; *patch = code % 100; }
  else { *major = code / 1000; *minor = (code % 1000) / 100; *patch = code % 100; }
}

// ---- CUDA driver API (cuda.h), libcuda.so.1 ----
typedef int CUresult;  // CUDA_SUCCESS = 0
typedef int CUdevice;
struct CUctx_st;
typedef CUctx_st* CUcontext;
typedef unsigned long long CUdeviceptr;  // CUdeviceptr_v2: 64-bit on every 64-bit platform
constexpr unsigned CU_STREAM_NON_BLOCKING = 0x1;

typedef CUresult (*cuInit_t)(unsigned flags);
typedef CUresult (*cuDeviceGetCount_t)(int* count);
typedef CUresult (*cuDeviceGet_t)(CUdevice* device, int ordinal);
typedef CUresult (*cuDeviceGetName_t)(char* name, int len, CUdevice dev);
typedef CUresult (*cuDevicePrimaryCtxRetain_t)(CUcontext* pctx, CUdevice dev);
typedef CUresult (*cuDevicePrimaryCtxRelease_t)(CUdevice dev);          // cuDevicePrimaryCtxRelease_v2
typedef CUresult (*cuCtxSetCurrent_t)(CUcontext ctx);
typedef CUresult (*cuCtxSynchronize_t)();
typedef CUresult (*cuStreamCreate_t)(cudaStream_t* stream, unsigned flags);
typedef CUresult (*cuStreamDestroy_t)(cudaStream_t stream);              // cuStreamDestroy_v2
typedef CUresult (*cuStreamSynchronize_t)(cudaStream_t stream);
typedef CUresult (*cuMemAlloc_t)(CUdeviceptr* dptr, size_t bytes);       // cuMemAlloc_v2
typedef CUresult (*cuMemFree_t)(CUdeviceptr dptr);                       // cuMemFree_v2
typedef CUresult (*cuMemcpyHtoD_t)(CUdeviceptr dst, const void* src, size_t bytes);  // cuMemcpyHtoD_v2
typedef CUresult (*cuMemcpyDtoH_t)(void* dst, CUdeviceptr src, size_t bytes);        // cuMemcpyDtoH_v2
typedef CUresult (*cuGetErrorString_t)(CUresult error, const char** str);

}  // namespace adist
