#include "isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace alexnet {

Isa detectIsa() {
#if ALEXNET_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
#endif
  return Isa::Portable;
}

bool parseIsa(const char* name, Isa* out) {
  if (!name) return false;
  if (!std::strcmp(name, "avx512")) { *out = Isa::Avx512; return true; }
  if (!std::strcmp(name, "avx2")) { *out = Isa::Avx2; return true; }
  if (!std::strcmp(name, "portable")) { *out = Isa::Portable; return true; }
  return false;
}

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "portable";
  }
}

namespace {
Isa initialIsa() {
  Isa best = detectIsa(), forced;
  if (parseIsa(std::getenv("ALEXNET_CPU_ISA"), &forced) && (int)forced < (int)best) return forced;
  return best;
}
std::atomic<int> g_isa{(int)initialIsa()};
}  // namespace

Isa activeIsa() { return (Isa)g_isa.load(std::memory_order_relaxed); }

bool setIsa(Isa isa) {
  if ((int)isa > (int)detectIsa()) return false;
  g_isa.store((int)isa);
  return true;
}

bool cpuHasBf16() {
#if ALEXNET_X86
  static const bool has = detectIsa() == Isa::Avx512 && __builtin_cpu_supports("avx512bf16");
  return has;
#else
  return false;
#endif
}

const char* precisionName(Precision p) { return p == Precision::Bf16 ? "bf16" : "fp32"; }

bool parsePrecision(const char* name, Precision* out) {
  if (!name) return false;
  if (!std::strcmp(name, "fp32")) { *out = Precision::Fp32; return true; }
  if (!std::strcmp(name, "bf16")) { *out = Precision::Bf16; return true; }
  return false;
}

namespace {
const char* g_precisionEnvInvalid = nullptr;
Precision initialPrecision() {
  const char* env = std::getenv("ALEXNET_CPU_PRECISION");
  Precision p = Precision::Fp32;
  if (env && *env && !parsePrecision(env, &p)) g_precisionEnvInvalid = env;
  return p;
}
std::atomic<int> g_precision{(int)initialPrecision()};
}  // namespace

Precision requestedPrecision() { return (Precision)g_precision.load(std::memory_order_relaxed); }
void setRequestedPrecision(Precision p) { g_precision.store((int)p); }
const char* precisionEnvInvalid() { return g_precisionEnvInvalid; }

const char* bf16Unavailable() {
  if (requestedPrecision() != Precision::Bf16) return nullptr;
  if (!cpuHasBf16())
    return "this CPU lacks AVX512_BF16 (the vdpbf16ps instruction), so the GEMMs stay in fp32";
  if (activeIsa() != Isa::Avx512)
    return "the kernels are capped below AVX-512 (ALEXNET_CPU_ISA or setCpuIsa), so the GEMMs stay in fp32";
  return nullptr;
}

Precision activePrecision() {
  return requestedPrecision() == Precision::Bf16 && !bf16Unavailable() ? Precision::Bf16 : Precision::Fp32;
}

}  // namespace alexnet
