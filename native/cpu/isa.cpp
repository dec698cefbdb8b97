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

}  // namespace alexnet
