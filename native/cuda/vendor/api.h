// The few cuDNN 9 and cuBLASLt (12.x / 13.x) types, values and functions the CUDA engine calls, declared
// here so that nothing of NVIDIA's is needed to build: the libraries are loaded at run time with
// dlopen (vendor/loader.cpp) when present, and the engine runs its own kernels when they are not.
// Written from NVIDIA's public API documentation (cudnn_graph.h, cudnn_ops.h, cudnn_cnn.h: the
// "legacy" convolution API, which cuDNN 9 keeps in libcudnn.so.9 + libcudnn_cnn.so.9; cublasLt.h,
// cublas_api.h, library_types.h). Enumerations are plain ints (every one used is int-sized).
// vendor/check_headers.cpp compiles, where the real headers are found at build time, a check that
// every declaration here matches them (signatures, enum values, struct layouts).
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace alexnet {
namespace cuda {
namespace vendor {

// ---- cuDNN 9 ----
typedef int cudnnStatus_t;
constexpr cudnnStatus_t CUDNN_STATUS_SUCCESS = 0;
constexpr cudnnStatus_t CUDNN_STATUS_NOT_INITIALIZED = 1001;
constexpr cudnnStatus_t CUDNN_STATUS_BAD_PARAM = 2000;
constexpr cudnnStatus_t CUDNN_STATUS_NOT_SUPPORTED = 3000;
constexpr cudnnStatus_t CUDNN_STATUS_INTERNAL_ERROR = 4000;
constexpr cudnnStatus_t CUDNN_STATUS_EXECUTION_FAILED = 5000;

typedef int cudnnDataType_t;
constexpr cudnnDataType_t CUDNN_DATA_FLOAT = 0;
typedef int cudnnTensorFormat_t;
constexpr cudnnTensorFormat_t CUDNN_TENSOR_NCHW = 0;
typedef int cudnnConvolutionMode_t;
constexpr cudnnConvolutionMode_t CUDNN_CROSS_CORRELATION = 1;
/** DEFAULT allows TF32 tensor cores on sm_80+ (PyTorch's default for convolutions); FMA is strict FP32. */
typedef int cudnnMathType_t;
constexpr cudnnMathType_t CUDNN_DEFAULT_MATH = 0;
constexpr cudnnMathType_t CUDNN_TENSOR_OP_MATH = 1;
constexpr cudnnMathType_t CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2;
constexpr cudnnMathType_t CUDNN_FMA_MATH = 3;
typedef int cudnnDeterminism_t;
constexpr cudnnDeterminism_t CUDNN_NON_DETERMINISTIC = 0;
constexpr cudnnDeterminism_t CUDNN_DETERMINISTIC = 1;
typedef int cudnnConvolutionFwdAlgo_t;      // 0 IMPLICIT_GEMM ... 7 WINOGRAD_NONFUSED
typedef int cudnnConvolutionBwdDataAlgo_t;  // 0 ... 5
typedef int cudnnConvolutionBwdFilterAlgo_t;  // 0 ... 6
constexpr int CUDNN_CONVOLUTION_FWD_ALGO_COUNT = 8;
constexpr int CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT = 6;
constexpr int CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT = 7;

struct cudnnContext;
typedef cudnnContext* cudnnHandle_t;
struct cudnnTensorStruct;
typedef cudnnTensorStruct* cudnnTensorDescriptor_t;
struct cudnnFilterStruct;
typedef cudnnFilterStruct* cudnnFilterDescriptor_t;
struct cudnnConvolutionStruct;
typedef cudnnConvolutionStruct* cudnnConvolutionDescriptor_t;
struct CUstream_st;
typedef CUstream_st* cudaStream_t;  // the runtime's stream type, an opaque pointer (CUstream)

/** The three algorithm-performance structs share this layout (cudnn_cnn.h). */
template <class Algo>
struct cudnnAlgoPerf {
  Algo algo;
  cudnnStatus_t status;
  float time;  // milliseconds
  size_t memory;  // workspace bytes
  cudnnDeterminism_t determinism;
  cudnnMathType_t mathType;
  int reserved[3];
};
typedef cudnnAlgoPerf<cudnnConvolutionFwdAlgo_t> cudnnConvolutionFwdAlgoPerf_t;
typedef cudnnAlgoPerf<cudnnConvolutionBwdDataAlgo_t> cudnnConvolutionBwdDataAlgoPerf_t;
typedef cudnnAlgoPerf<cudnnConvolutionBwdFilterAlgo_t> cudnnConvolutionBwdFilterAlgoPerf_t;

typedef size_t (*cudnnGetVersion_fn)();
typedef const char* (*cudnnGetErrorString_fn)(cudnnStatus_t);
typedef cudnnStatus_t (*cudnnCreate_fn)(cudnnHandle_t*);
typedef cudnnStatus_t (*cudnnDestroy_fn)(cudnnHandle_t);
typedef cudnnStatus_t (*cudnnSetStream_fn)(cudnnHandle_t, cudaStream_t);
typedef cudnnStatus_t (*cudnnCreateTensorDescriptor_fn)(cudnnTensorDescriptor_t*);
typedef cudnnStatus_t (*cudnnSetTensor4dDescriptor_fn)(cudnnTensorDescriptor_t, cudnnTensorFormat_t, cudnnDataType_t, int n,
                                                      int c, int h, int w);
typedef cudnnStatus_t (*cudnnDestroyTensorDescriptor_fn)(cudnnTensorDescriptor_t);
typedef cudnnStatus_t (*cudnnCreateFilterDescriptor_fn)(cudnnFilterDescriptor_t*);
typedef cudnnStatus_t (*cudnnSetFilter4dDescriptor_fn)(cudnnFilterDescriptor_t, cudnnDataType_t, cudnnTensorFormat_t, int k,
                                                      int c, int h, int w);
typedef cudnnStatus_t (*cudnnDestroyFilterDescriptor_fn)(cudnnFilterDescriptor_t);
typedef cudnnStatus_t (*cudnnCreateConvolutionDescriptor_fn)(cudnnConvolutionDescriptor_t*);
typedef cudnnStatus_t (*cudnnSetConvolution2dDescriptor_fn)(cudnnConvolutionDescriptor_t, int padH, int padW, int strideH,
                                                           int strideW, int dilationH, int dilationW, cudnnConvolutionMode_t,
                                                           cudnnDataType_t computeType);
typedef cudnnStatus_t (*cudnnSetConvolutionGroupCount_fn)(cudnnConvolutionDescriptor_t, int);
typedef cudnnStatus_t (*cudnnSetConvolutionMathType_fn)(cudnnConvolutionDescriptor_t, cudnnMathType_t);
typedef cudnnStatus_t (*cudnnDestroyConvolutionDescriptor_fn)(cudnnConvolutionDescriptor_t);
typedef cudnnStatus_t (*cudnnGetConvolutionForwardWorkspaceSize_fn)(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                                   cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t,
                                                                   cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t,
                                                                   size_t*);
typedef cudnnStatus_t (*cudnnGetConvolutionBackwardDataWorkspaceSize_fn)(cudnnHandle_t, cudnnFilterDescriptor_t w,
                                                                        cudnnTensorDescriptor_t dy,
                                                                        cudnnConvolutionDescriptor_t,
                                                                        cudnnTensorDescriptor_t dx,
                                                                        cudnnConvolutionBwdDataAlgo_t, size_t*);
typedef cudnnStatus_t (*cudnnGetConvolutionBackwardFilterWorkspaceSize_fn)(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                                          cudnnTensorDescriptor_t dy,
                                                                          cudnnConvolutionDescriptor_t,
                                                                          cudnnFilterDescriptor_t dw,
                                                                          cudnnConvolutionBwdFilterAlgo_t, size_t*);
typedef cudnnStatus_t (*cudnnFindConvolutionForwardAlgorithmEx_fn)(
    cudnnHandle_t, cudnnTensorDescriptor_t xDesc, const void* x, cudnnFilterDescriptor_t wDesc, const void* w,
    cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t yDesc, void* y, int requested, int* returned,
    cudnnConvolutionFwdAlgoPerf_t* perf, void* workspace, size_t workspaceBytes);
typedef cudnnStatus_t (*cudnnFindConvolutionBackwardDataAlgorithmEx_fn)(
    cudnnHandle_t, cudnnFilterDescriptor_t wDesc, const void* w, cudnnTensorDescriptor_t dyDesc, const void* dy,
    cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t dxDesc, void* dx, int requested, int* returned,
    cudnnConvolutionBwdDataAlgoPerf_t* perf, void* workspace, size_t workspaceBytes);
typedef cudnnStatus_t (*cudnnFindConvolutionBackwardFilterAlgorithmEx_fn)(
    cudnnHandle_t, cudnnTensorDescriptor_t xDesc, const void* x, cudnnTensorDescriptor_t dyDesc, const void* dy,
    cudnnConvolutionDescriptor_t, cudnnFilterDescriptor_t dwDesc, void* dw, int requested, int* returned,
    cudnnConvolutionBwdFilterAlgoPerf_t* perf, void* workspace, size_t workspaceBytes);
typedef cudnnStatus_t (*cudnnConvolutionForward_fn)(cudnnHandle_t, const void* alpha, cudnnTensorDescriptor_t xDesc,
                                                   const void* x, cudnnFilterDescriptor_t wDesc, const void* w,
                                                   cudnnConvolutionDescriptor_t, cudnnConvolutionFwdAlgo_t,
                                                   void* workspace, size_t workspaceBytes, const void* beta,
                                                   cudnnTensorDescriptor_t yDesc, void* y);
typedef cudnnStatus_t (*cudnnConvolutionBackwardData_fn)(cudnnHandle_t, const void* alpha, cudnnFilterDescriptor_t wDesc,
                                                        const void* w, cudnnTensorDescriptor_t dyDesc, const void* dy,
                                                        cudnnConvolutionDescriptor_t, cudnnConvolutionBwdDataAlgo_t,
                                                        void* workspace, size_t workspaceBytes, const void* beta,
                                                        cudnnTensorDescriptor_t dxDesc, void* dx);
typedef cudnnStatus_t (*cudnnConvolutionBackwardFilter_fn)(cudnnHandle_t, const void* alpha, cudnnTensorDescriptor_t xDesc,
                                                          const void* x, cudnnTensorDescriptor_t dyDesc, const void* dy,
                                                          cudnnConvolutionDescriptor_t, cudnnConvolutionBwdFilterAlgo_t,
                                                          void* workspace, size_t workspaceBytes, const void* beta,
                                                          cudnnFilterDescriptor_t dwDesc, void* dw);

// ---- cuBLASLt (12.x, 13.x) ----
typedef int cublasStatus_t;
constexpr cublasStatus_t CUBLAS_STATUS_SUCCESS = 0;
constexpr cublasStatus_t CUBLAS_STATUS_NOT_INITIALIZED = 1;
constexpr cublasStatus_t CUBLAS_STATUS_INVALID_VALUE = 7;
constexpr cublasStatus_t CUBLAS_STATUS_NOT_SUPPORTED = 15;
typedef int cublasOperation_t;
constexpr cublasOperation_t CUBLAS_OP_N = 0;
constexpr cublasOperation_t CUBLAS_OP_T = 1;
typedef int cublasComputeType_t;
constexpr cublasComputeType_t CUBLAS_COMPUTE_32F = 68;
constexpr cublasComputeType_t CUBLAS_COMPUTE_32F_FAST_TF32 = 77;  // inputs rounded to TF32 (tensor cores)
typedef int cudaDataType_t;  // library_types.h
constexpr cudaDataType_t CUDA_R_32F = 0;
typedef int cublasLtMatmulDescAttributes_t;
constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_TRANSA = 3;  // int32 (cublasOperation_t)
constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_TRANSB = 4;
constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_EPILOGUE = 7;  // uint32 (cublasLtEpilogue_t)
constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8;  // const void*
typedef int cublasLtEpilogue_t;
constexpr cublasLtEpilogue_t CUBLASLT_EPILOGUE_DEFAULT = 1;
constexpr cublasLtEpilogue_t CUBLASLT_EPILOGUE_RELU = 2;
constexpr cublasLtEpilogue_t CUBLASLT_EPILOGUE_BIAS = 4;  // bias[row of D], broadcast along its columns
constexpr cublasLtEpilogue_t CUBLASLT_EPILOGUE_RELU_BIAS = 6;
typedef int cublasLtMatmulPreferenceAttributes_t;
constexpr cublasLtMatmulPreferenceAttributes_t CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;  // uint64

struct cublasLtContext;
typedef cublasLtContext* cublasLtHandle_t;
struct cublasLtMatmulDescOpaque_t { uint64_t data[32]; };
typedef cublasLtMatmulDescOpaque_t* cublasLtMatmulDesc_t;
struct cublasLtMatrixLayoutOpaque_t { uint64_t data[8]; };
typedef cublasLtMatrixLayoutOpaque_t* cublasLtMatrixLayout_t;
struct cublasLtMatmulPreferenceOpaque_t { uint64_t data[8]; };
typedef cublasLtMatmulPreferenceOpaque_t* cublasLtMatmulPreference_t;
struct cublasLtMatmulAlgo_t { uint64_t data[8]; };
struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};

typedef size_t (*cublasLtGetVersion_fn)();
typedef const char* (*cublasLtGetStatusString_fn)(cublasStatus_t);
typedef cublasStatus_t (*cublasLtCreate_fn)(cublasLtHandle_t*);
typedef cublasStatus_t (*cublasLtDestroy_fn)(cublasLtHandle_t);
typedef cublasStatus_t (*cublasLtMatmulDescCreate_fn)(cublasLtMatmulDesc_t*, cublasComputeType_t, cudaDataType_t scaleType);
typedef cublasStatus_t (*cublasLtMatmulDescDestroy_fn)(cublasLtMatmulDesc_t);
typedef cublasStatus_t (*cublasLtMatmulDescSetAttribute_fn)(cublasLtMatmulDesc_t, cublasLtMatmulDescAttributes_t,
                                                            const void* buf, size_t bytes);
typedef cublasStatus_t (*cublasLtMatrixLayoutCreate_fn)(cublasLtMatrixLayout_t*, cudaDataType_t, uint64_t rows, uint64_t cols,
                                                        int64_t ld);
typedef cublasStatus_t (*cublasLtMatrixLayoutDestroy_fn)(cublasLtMatrixLayout_t);
typedef cublasStatus_t (*cublasLtMatmulPreferenceCreate_fn)(cublasLtMatmulPreference_t*);
typedef cublasStatus_t (*cublasLtMatmulPreferenceDestroy_fn)(cublasLtMatmulPreference_t);
typedef cublasStatus_t (*cublasLtMatmulPreferenceSetAttribute_fn)(cublasLtMatmulPreference_t,
                                                                  cublasLtMatmulPreferenceAttributes_t, const void* buf,
                                                                  size_t bytes);
typedef cublasStatus_t (*cublasLtMatmulAlgoGetHeuristic_fn)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t a,
                                                            cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                                            cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t,
                                                            int requested, cublasLtMatmulHeuristicResult_t* results,
                                                            int* returned);
typedef cublasStatus_t (*cublasLtMatmul_fn)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void* alpha, const void* a,
                                            cublasLtMatrixLayout_t, const void* b, cublasLtMatrixLayout_t, const void* beta,
                                            const void* c, cublasLtMatrixLayout_t, void* d, cublasLtMatrixLayout_t,
                                            const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceBytes,
                                            cudaStream_t);

// ---- NCCL: only its version (the engine does not use NCCL; @alexnet/distributed does) ----
typedef int ncclResult_t;
typedef ncclResult_t (*ncclGetVersion_fn)(int* version);

// ---- the emulated engine's stand-ins ----
/**
 * A stand-in library for the emulated engine (built by the tests, packages/cuda/test/standin) exports
 * `alexnetStandinAttach`: the emulated engine hands it the emulation's stream queue, so the stand-in's
 * work runs in stream order on the emulated device. The emulated engine loads only libraries that
 * export it (NVIDIA's would be handed host pointers); the GPU engine refuses those that do.
 */
struct StandinHooks {
  int version;  // 1
  /** Queues fn(arg) on the emulated stream (cudaLaunchHostFunc); 0 on success. */
  int (*enqueue)(void* stream, void (*fn)(void*), void* arg);
};
typedef void (*alexnetStandinAttach_fn)(const StandinHooks*);
constexpr const char* kStandinSymbol = "alexnetStandinAttach";

}  // namespace vendor
}  // namespace cuda
}  // namespace alexnet
