#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "dynlib.h"

#include <dlfcn.h>
#include <link.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <mutex>

namespace adist {

namespace {

NcclLib g_nccl;
bool g_ncclLoaded = false;
NcclProbe g_ncclProbe;

std::string LoadedPath(void* handle, const std::string& fallback) {
  struct link_map* lm = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && lm->l_name[0]) {
    char buf[PATH_MAX];
    if (realpath(lm->l_name, buf)) return buf;
    return lm->l_name;
  }
  return fallback;
}

template <typename F>
bool Sym(void* h, const char* name, F* out, std::string* missing) {
  void* p = dlsym(h, name);
  if (!p) {
    if (!missing->empty()) *missing += ", ";
    *missing += name;
    return false;
  }
  *out = reinterpret_cast<F>(p);
  return true;
}

}  // namespace

NcclProbe ProbeNccl(const std::vector<std::string>& candidates) {
  if (g_ncclLoaded) return g_ncclProbe;
  NcclProbe probe;
  for (const std::string& cand : candidates) {
    LoadAttempt attempt{cand, ""};
    if (cand.find('/') != std::string::npos) {
      struct stat st;
      if (stat(cand.c_str(), &st) != 0) {
        attempt.error = "no such file";
        probe.attempts.push_back(attempt);
        continue;
      }
    }
    dlerror();
    void* h = dlopen(cand.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      attempt.error = e ? e : "dlopen failed";
      probe.attempts.push_back(attempt);
      continue;
    }
    NcclLib lib;
    lib.handle = h;
    std::string missing;
    Sym(h, "ncclGetVersion", &lib.getVersion, &missing);
    Sym(h, "ncclGetUniqueId", &lib.getUniqueId, &missing);
    Sym(h, "ncclCommInitRank", &lib.commInitRank, &missing);
    Sym(h, "ncclCommDestroy", &lib.commDestroy, &missing);
    Sym(h, "ncclGetErrorString", &lib.getErrorString, &missing);
    Sym(h, "ncclAllReduce", &lib.allReduce, &missing);
    Sym(h, "ncclBroadcast", &lib.broadcast, &missing);
    Sym(h, "ncclGroupStart", &lib.groupStart, &missing);
    Sym(h, "ncclGroupEnd", &lib.groupEnd, &missing);
    if (!missing.empty()) {
      attempt.error = "loaded, but it lacks " + missing + " (not an NCCL 2 library)";
      probe.attempts.push_back(attempt);
      dlclose(h);
      continue;
    }
    int code = 0;
    ncclResult_t r = lib.getVersion(&code);
    if (r != ncclSuccess || code <= 0) {
      attempt.error = "loaded, but ncclGetVersion failed";
      probe.attempts.push_back(attempt);
      dlclose(h);
      continue;
    }
    lib.versionCode = code;
    lib.path = LoadedPath(h, cand);
    probe.attempts.push_back(attempt);
    probe.found = true;
    probe.path = lib.path;
    probe.versionCode = code;
    g_nccl = lib;
    g_ncclLoaded = true;
    g_ncclProbe = probe;
    return probe;
  }
  return probe;
}

const NcclLib* Nccl() { return g_ncclLoaded ? &g_nccl : nullptr; }

std::string NcclErrorString(ncclResult_t r) {
  const NcclLib* l = Nccl();
  const char* s = l && l->getErrorString ? l->getErrorString(r) : nullptr;
  return std::string(s ? s : "unknown NCCL error") + " (ncclResult_t " + std::to_string(static_cast<int>(r)) + ")";
}

namespace {
std::once_flag g_cuOnce;
CudaDriver g_cu;
std::string g_cuError;
bool g_cuOk = false;
}  // namespace

const CudaDriver* LoadCudaDriver(std::string* error) {
  std::call_once(g_cuOnce, [] {
    dlerror();
    void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      g_cuError = std::string("the CUDA driver (libcuda.so.1) could not be loaded: ") + (e ? e : "dlopen failed");
      return;
    }
    CudaDriver d;
    d.handle = h;
    std::string missing;
    Sym(h, "cuInit", &d.init, &missing);
    Sym(h, "cuDeviceGetCount", &d.deviceGetCount, &missing);
    Sym(h, "cuDeviceGet", &d.deviceGet, &missing);
    Sym(h, "cuDeviceGetName", &d.deviceGetName, &missing);
    Sym(h, "cuDevicePrimaryCtxRetain", &d.primaryCtxRetain, &missing);
    if (!dlsym(h, "cuDevicePrimaryCtxRelease_v2")) Sym(h, "cuDevicePrimaryCtxRelease", &d.primaryCtxRelease, &missing);
    else Sym(h, "cuDevicePrimaryCtxRelease_v2", &d.primaryCtxRelease, &missing);
    Sym(h, "cuCtxSetCurrent", &d.ctxSetCurrent, &missing);
    Sym(h, "cuCtxSynchronize", &d.ctxSynchronize, &missing);
    Sym(h, "cuStreamCreate", &d.streamCreate, &missing);
    Sym(h, "cuStreamDestroy_v2", &d.streamDestroy, &missing);
    Sym(h, "cuStreamSynchronize", &d.streamSynchronize, &missing);
    Sym(h, "cuMemAlloc_v2", &d.memAlloc, &missing);
    Sym(h, "cuMemFree_v2", &d.memFree, &missing);
    Sym(h, "cuMemcpyHtoD_v2", &d.memcpyHtoD, &missing);
    Sym(h, "cuMemcpyDtoH_v2", &d.memcpyDtoH, &missing);
    Sym(h, "cuGetErrorString", &d.getErrorString, &missing);
    if (!missing.empty()) {
      g_cuError = "the CUDA driver (libcuda.so.1) lacks " + missing + " (a driver for CUDA 11 or later is needed)";
      dlclose(h);
      return;
    }
    d.path = LoadedPath(h, "libcuda.so.1");
    g_cu = d;
    g_cuOk = true;
  });
  if (!g_cuOk) {
    if (error) *error = g_cuError;
    return nullptr;
  }
  return &g_cu;
}

std::string CuErrorString(const CudaDriver* d, CUresult r) {
  const char* s = nullptr;
  if (d && d->getErrorString) d->getErrorString(r, &s);
  return std::string(s ? s : "unknown CUDA error") + " (CUresult " + std::to_string(r) + ")";
}

}  // namespace adist
