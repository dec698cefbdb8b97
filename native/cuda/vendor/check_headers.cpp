// Compile-time check that vendor/api.h matches NVIDIA's headers, for a build machine where they are
// present (scripts/build.mjs compiles this with -fsyntax-only when it finds cudnn.h and cublasLt.h:
// the CUDA toolkit, $CUDNN_INCLUDE / $CUBLAS_INCLUDE, or the nvidia/*/include folders of a Python
// site-packages). Nothing here is built into the addon. Every function the engine resolves with
// dlsym is compared with the real declaration, parameter by parameter, after mapping both sides to a
// canonical form (enumerations to int, pointers to structs to void*: the opaque handles); enumeration
// values and the layouts of the structs the engine reads are compared exactly.
#include <cstddef>
#include <type_traits>

#include <cudnn.h>
#include <cublasLt.h>

#include "api.h"

namespace v = alexnet::cuda::vendor;

namespace {

template <class T, class = void>
struct Canon { using type = T; };
template <class T>
struct Canon<T, typename std::enable_if<std::is_enum<T>::value>::type> {
  static_assert(sizeof(T) == sizeof(int), "an enumeration that is not int-sized");
  using type = int;
};
template <class T>
struct Canon<T*> { using type = typename std::conditional<std::is_class<T>::value, void*, typename Canon<T>::type*>::type; };
template <class T>
struct Canon<const T*> {
  using type = typename std::conditional<std::is_class<T>::value, const void*, const typename Canon<T>::type*>::type;
};
template <class R, class... A>
struct Canon<R (*)(A...)> { using type = typename Canon<R>::type (*)(typename Canon<A>::type...); };

template <class Real, class Ours>
constexpr bool same() { return std::is_same<typename Canon<Real>::type, typename Canon<Ours>::type>::value; }

}  // namespace

#define ALEXNET_SAME_FN(name) static_assert(same<decltype(&::name), v::name##_fn>(), "vendor/api.h: " #name " differs from the header")
#define ALEXNET_SAME_VALUE(name) static_assert((int)::name == (int)v::name, "vendor/api.h: the value of " #name " differs")
#define ALEXNET_SAME_FIELD(real, ours, field) \
  static_assert(offsetof(real, field) == offsetof(ours, field), "vendor/api.h: " #real "::" #field " is not where the header puts it")

// ---- cuDNN ----
static_assert(CUDNN_MAJOR == 9, "the engine's cuDNN declarations are those of cuDNN 9");
ALEXNET_SAME_FN(cudnnGetVersion);
ALEXNET_SAME_FN(cudnnGetErrorString);
ALEXNET_SAME_FN(cudnnCreate);
ALEXNET_SAME_FN(cudnnDestroy);
ALEXNET_SAME_FN(cudnnSetStream);
ALEXNET_SAME_FN(cudnnCreateTensorDescriptor);
ALEXNET_SAME_FN(cudnnSetTensor4dDescriptor);
ALEXNET_SAME_FN(cudnnDestroyTensorDescriptor);
ALEXNET_SAME_FN(cudnnCreateFilterDescriptor);
ALEXNET_SAME_FN(cudnnSetFilter4dDescriptor);
ALEXNET_SAME_FN(cudnnDestroyFilterDescriptor);
ALEXNET_SAME_FN(cudnnCreateConvolutionDescriptor);
ALEXNET_SAME_FN(cudnnSetConvolution2dDescriptor);
ALEXNET_SAME_FN(cudnnSetConvolutionGroupCount);
ALEXNET_SAME_FN(cudnnSetConvolutionMathType);
ALEXNET_SAME_FN(cudnnDestroyConvolutionDescriptor);
ALEXNET_SAME_FN(cudnnGetConvolutionForwardWorkspaceSize);
ALEXNET_SAME_FN(cudnnGetConvolutionBackwardDataWorkspaceSize);
ALEXNET_SAME_FN(cudnnGetConvolutionBackwardFilterWorkspaceSize);
ALEXNET_SAME_FN(cudnnFindConvolutionForwardAlgorithmEx);
ALEXNET_SAME_FN(cudnnFindConvolutionBackwardDataAlgorithmEx);
ALEXNET_SAME_FN(cudnnFindConvolutionBackwardFilterAlgorithmEx);
ALEXNET_SAME_FN(cudnnConvolutionForward);
ALEXNET_SAME_FN(cudnnConvolutionBackwardData);
ALEXNET_SAME_FN(cudnnConvolutionBackwardFilter);

ALEXNET_SAME_VALUE(CUDNN_STATUS_SUCCESS);
ALEXNET_SAME_VALUE(CUDNN_STATUS_NOT_INITIALIZED);
ALEXNET_SAME_VALUE(CUDNN_STATUS_BAD_PARAM);
ALEXNET_SAME_VALUE(CUDNN_STATUS_NOT_SUPPORTED);
ALEXNET_SAME_VALUE(CUDNN_STATUS_INTERNAL_ERROR);
ALEXNET_SAME_VALUE(CUDNN_STATUS_EXECUTION_FAILED);
ALEXNET_SAME_VALUE(CUDNN_DATA_FLOAT);
ALEXNET_SAME_VALUE(CUDNN_TENSOR_NCHW);
ALEXNET_SAME_VALUE(CUDNN_CROSS_CORRELATION);
ALEXNET_SAME_VALUE(CUDNN_DEFAULT_MATH);
ALEXNET_SAME_VALUE(CUDNN_TENSOR_OP_MATH);
ALEXNET_SAME_VALUE(CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
ALEXNET_SAME_VALUE(CUDNN_FMA_MATH);
ALEXNET_SAME_VALUE(CUDNN_NON_DETERMINISTIC);
ALEXNET_SAME_VALUE(CUDNN_DETERMINISTIC);
ALEXNET_SAME_VALUE(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
ALEXNET_SAME_VALUE(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
ALEXNET_SAME_VALUE(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);

#define ALEXNET_SAME_PERF(real, ours)                                                          \
  static_assert(sizeof(real) == sizeof(ours), "vendor/api.h: sizeof " #real " differs");       \
  ALEXNET_SAME_FIELD(real, ours, algo);                                                        \
  ALEXNET_SAME_FIELD(real, ours, status);                                                      \
  ALEXNET_SAME_FIELD(real, ours, time);                                                        \
  ALEXNET_SAME_FIELD(real, ours, memory);                                                      \
  ALEXNET_SAME_FIELD(real, ours, determinism);                                                 \
  ALEXNET_SAME_FIELD(real, ours, mathType)
ALEXNET_SAME_PERF(::cudnnConvolutionFwdAlgoPerf_t, v::cudnnConvolutionFwdAlgoPerf_t);
ALEXNET_SAME_PERF(::cudnnConvolutionBwdDataAlgoPerf_t, v::cudnnConvolutionBwdDataAlgoPerf_t);
ALEXNET_SAME_PERF(::cudnnConvolutionBwdFilterAlgoPerf_t, v::cudnnConvolutionBwdFilterAlgoPerf_t);

// ---- cuBLASLt ----
ALEXNET_SAME_FN(cublasLtGetVersion);
ALEXNET_SAME_FN(cublasLtGetStatusString);
ALEXNET_SAME_FN(cublasLtCreate);
ALEXNET_SAME_FN(cublasLtDestroy);
ALEXNET_SAME_FN(cublasLtMatmulDescCreate);
ALEXNET_SAME_FN(cublasLtMatmulDescDestroy);
ALEXNET_SAME_FN(cublasLtMatmulDescSetAttribute);
ALEXNET_SAME_FN(cublasLtMatrixLayoutCreate);
ALEXNET_SAME_FN(cublasLtMatrixLayoutDestroy);
ALEXNET_SAME_FN(cublasLtMatmulPreferenceCreate);
ALEXNET_SAME_FN(cublasLtMatmulPreferenceDestroy);
ALEXNET_SAME_FN(cublasLtMatmulPreferenceSetAttribute);
ALEXNET_SAME_FN(cublasLtMatmulAlgoGetHeuristic);
ALEXNET_SAME_FN(cublasLtMatmul);

ALEXNET_SAME_VALUE(CUBLAS_STATUS_SUCCESS);
ALEXNET_SAME_VALUE(CUBLAS_STATUS_NOT_INITIALIZED);
ALEXNET_SAME_VALUE(CUBLAS_STATUS_INVALID_VALUE);
ALEXNET_SAME_VALUE(CUBLAS_STATUS_NOT_SUPPORTED);
ALEXNET_SAME_VALUE(CUBLAS_OP_N);
ALEXNET_SAME_VALUE(CUBLAS_OP_T);
ALEXNET_SAME_VALUE(CUBLAS_COMPUTE_32F);
ALEXNET_SAME_VALUE(CUBLAS_COMPUTE_32F_FAST_TF32);
ALEXNET_SAME_VALUE(CUDA_R_32F);
ALEXNET_SAME_VALUE(CUBLASLT_MATMUL_DESC_TRANSA);
ALEXNET_SAME_VALUE(CUBLASLT_MATMUL_DESC_TRANSB);
ALEXNET_SAME_VALUE(CUBLASLT_MATMUL_DESC_EPILOGUE);
ALEXNET_SAME_VALUE(CUBLASLT_MATMUL_DESC_BIAS_POINTER);
ALEXNET_SAME_VALUE(CUBLASLT_EPILOGUE_DEFAULT);
ALEXNET_SAME_VALUE(CUBLASLT_EPILOGUE_RELU);
ALEXNET_SAME_VALUE(CUBLASLT_EPILOGUE_BIAS);
ALEXNET_SAME_VALUE(CUBLASLT_EPILOGUE_RELU_BIAS);
ALEXNET_SAME_VALUE(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES);

static_assert(sizeof(::cublasLtMatmulAlgo_t) == sizeof(v::cublasLtMatmulAlgo_t), "vendor/api.h: sizeof cublasLtMatmulAlgo_t differs");
static_assert(sizeof(::cublasLtMatmulHeuristicResult_t) == sizeof(v::cublasLtMatmulHeuristicResult_t),
              "vendor/api.h: sizeof cublasLtMatmulHeuristicResult_t differs");
ALEXNET_SAME_FIELD(::cublasLtMatmulHeuristicResult_t, v::cublasLtMatmulHeuristicResult_t, algo);
ALEXNET_SAME_FIELD(::cublasLtMatmulHeuristicResult_t, v::cublasLtMatmulHeuristicResult_t, workspaceSize);
ALEXNET_SAME_FIELD(::cublasLtMatmulHeuristicResult_t, v::cublasLtMatmulHeuristicResult_t, state);
ALEXNET_SAME_FIELD(::cublasLtMatmulHeuristicResult_t, v::cublasLtMatmulHeuristicResult_t, wavesCount);

int main() { return 0; }
