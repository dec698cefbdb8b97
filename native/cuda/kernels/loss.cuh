// Softmax, softmax cross-entropy (the 1000-way output of §3, trained with multinomial logistic
// regression) and the top-k count of §6. One block per row; fixed-order reductions.
#pragma once
#include "common.cuh"

namespace alexnet {
namespace cuda {

// logits [n, c] -> rowLoss[i] = -log softmax(logits_i)[label_i]; dlogits = (softmax - onehot) / n.
__global__ void __launch_bounds__(kThreads) softmaxCrossEntropyKernel(const float* logits, const int* labels, float* rowLoss, float* dlogits, int n,
                                          int c) {
  __shared__ float scratch[kThreads];
  const int i = blockIdx.x;
  const float* row = logits + (long long)i * c;
  const int label = labels[i];
  const bool valid = label >= 0 && label < c;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < c; j += kThreads) mx = fmaxf(mx, row[j]);
  mx = blockReduce<true>(mx, scratch);
  float s = 0.f;
  for (int j = threadIdx.x; j < c; j += kThreads) s += expf(row[j] - mx);
  s = blockReduce<false>(s, scratch);
  const float logSum = logf(s);
  if (threadIdx.x == 0) rowLoss[i] = valid ? -(row[label] - mx - logSum) : NAN;
  if (dlogits) {
    const float invN = 1.f / (float)n, invS = 1.f / s;
    for (int j = threadIdx.x; j < c; j += kThreads) {
      const float p = expf(row[j] - mx) * invS;
      dlogits[(long long)i * c + j] = valid ? (p - (j == label ? 1.f : 0.f)) * invN : NAN;
    }
  }
}

// loss[0] = mean of rowLoss[0..n) (one block, fixed order).
__global__ void __launch_bounds__(kThreads) meanKernel(const float* rowLoss, float* loss, int n) {
  __shared__ float scratch[kThreads];
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += kThreads) s += rowLoss[i];
  s = blockReduce<false>(s, scratch);
  if (threadIdx.x == 0) loss[0] = s / (float)n;
}

// y = softmax(x) along rows (y may alias x: each row is read fully before it is written).
__global__ void __launch_bounds__(kThreads) softmaxKernel(const float* x, float* y, int c) {
  __shared__ float scratch[kThreads];
  const long long base = (long long)blockIdx.x * c;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < c; j += kThreads) mx = fmaxf(mx, x[base + j]);
  mx = blockReduce<true>(mx, scratch);
  float s = 0.f;
  for (int j = threadIdx.x; j < c; j += kThreads) s += expf(x[base + j] - mx);
  s = blockReduce<false>(s, scratch);
  const float inv = 1.f / s;
  for (int j = threadIdx.x; j < c; j += kThreads) y[base + j] = expf(x[base + j] - mx) * inv;
}

// out[0] += 1 for each row whose label t ranks among the first k (out zeroed first). Class j ranks
// above t when row[j] > row[t], or row[j] == row[t] and j < t (a stable sort by descending score);
// a NaN anywhere in the row makes it wrong, as does a label outside [0, c).
__global__ void __launch_bounds__(kThreads) topkCorrectKernel(const float* logits, const int* labels, int* out, int c, int k) {
  __shared__ int scratch[kThreads];
  const int i = blockIdx.x, label = labels[i];
  if (label < 0 || label >= c) return;  // uniform across the block: no thread reaches the barrier
  const float* row = logits + (long long)i * c;
  const float v = row[label];
  int above = 0, nan = 0;
  for (int j = threadIdx.x; j < c; j += kThreads) {
    const float z = row[j];
    nan += z != z ? 1 : 0;
    above += (z > v || (z == v && j < label)) ? 1 : 0;
  }
  above = blockSumInt(above, scratch);
  nan = blockSumInt(nan, scratch);
  if (threadIdx.x == 0 && nan == 0 && above < k) atomicAdd(out, 1);
}

}  // namespace cuda
}  // namespace alexnet
