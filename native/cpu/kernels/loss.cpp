// Softmax, softmax cross-entropy (the 1000-way output of §3, trained with multinomial logistic
// regression) and the top-k count of §6, row by row in double (native/cuda/kernels/loss.cuh is the
// CUDA engine's).
#include <cmath>
#include <limits>

#include "../kernels.h"
#include "common.h"

namespace alexnet {

namespace {

double rowMax(const float* z, int64_t c) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < c; ++j) mx = std::max(mx, (double)z[j]);
  return mx;
}

/** f(i) for each row i < n, rows of c elements, in parallel. */
template <class F>
void forRows(ThreadPool& pool, int64_t n, int64_t c, F f) {
  pool.parallelFor(n, std::max<int64_t>(1, 4096 / std::max<int64_t>(c, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

}  // namespace

void softmaxCrossEntropy(ThreadPool& pool, const float* logits, const int32_t* labels, float* loss, float* dlogits,
                         int64_t n, int64_t c) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  double* rowLoss = scratch<double>(Scratch::Rows, (size_t)std::max<int64_t>(n, 1));
  forRows(pool, n, c, [&](int64_t i) {
    const float* z = logits + i * c;
    const int32_t label = labels[i];
    const bool valid = label >= 0 && label < c;
    const double mx = rowMax(z, c);
    double sum = 0.0;
    for (int64_t j = 0; j < c; ++j) sum += std::exp((double)z[j] - mx);
    const double lse = mx + std::log(sum);
    rowLoss[i] = valid ? lse - (double)z[label] : kNaN;
    if (!dlogits) return;
    float* d = dlogits + i * c;
    for (int64_t j = 0; j < c; ++j)
      d[j] = valid ? (float)((std::exp((double)z[j] - lse) - (j == label ? 1.0 : 0.0)) / (double)n) : (float)kNaN;
  });
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += rowLoss[i];
  loss[0] = n > 0 ? (float)(total / (double)n) : (float)kNaN;
}

void softmax(ThreadPool& pool, const float* x, float* y, int64_t n, int64_t c) {
  if (n == 0 || c == 0) return;
  forRows(pool, n, c, [&](int64_t i) {
    double* ex = scratch<double>(Scratch::Row, (size_t)c);
    const float* z = x + i * c;
    const double mx = rowMax(z, c);
    double sum = 0.0;
    for (int64_t j = 0; j < c; ++j) sum += (ex[j] = std::exp((double)z[j] - mx));
    float* o = y + i * c;
    for (int64_t j = 0; j < c; ++j) o[j] = (float)(ex[j] / sum);
  });
}

// Class j ranks above the label t when z[j] > z[t], or z[j] == z[t] and j < t (a stable sort by
// descending score); a NaN anywhere in the row makes it wrong, as does a label outside [0, c).
int32_t topkCorrect(const float* logits, const int32_t* labels, int64_t n, int64_t c, int64_t k) {
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t label = labels[i];
    if (label < 0 || label >= c) continue;
    const float* z = logits + i * c;
    const float t = z[label];
    int64_t above = 0, nan = 0;
    for (int64_t j = 0; j < c; ++j) {
      const float v = z[j];
      nan += v != v ? 1 : 0;
      above += (v > t || (v == t && j < label)) ? 1 : 0;
    }
    if (nan == 0 && above < k) ++correct;
  }
  return (int32_t)correct;
}

}  // namespace alexnet
