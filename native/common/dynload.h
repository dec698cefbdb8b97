// Run-time loading of optional shared libraries (dlopen, no link-time dependency), shared by the
// addons that use NVIDIA's libraries when they are present: a caller builds the ordered list of
// candidates (an environment variable, bare names for the dynamic loader, toolkit folders, Python
// site-packages: see packages/cuda/src/libraries.ts), and openFirst() tries them in order, keeping a
// record of every attempt so that "not found" can say where it looked. Header-only; POSIX.
// (native/mpi/dynlib.cpp does the same for NCCL with its own copy of these few lines; it can move to
// this header.)
#pragma once
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <functional>
#include <string>
#include <vector>

namespace alexnet {
namespace dynload {

/** One candidate tried: its path (or bare name) and why it was passed over (empty: it was taken). */
struct Attempt {
  std::string path;
  std::string error;
};

/** The real path of a loaded library (the loader's answer for a bare name), else `fallback`. */
inline std::string loadedPath(void* handle, const std::string& fallback) {
  struct link_map* lm = nullptr;
  if (handle && dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && lm->l_name[0]) {
    char buf[PATH_MAX];
    if (realpath(lm->l_name, buf)) return buf;
    return lm->l_name;
  }
  return fallback;
}

/** *out = dlsym(h, name); a missing name is appended to *missing (", "-separated). */
template <typename F>
bool sym(void* h, const char* name, F* out, std::string* missing) {
  void* p = dlsym(h, name);
  if (!p) {
    if (missing) {
      if (!missing->empty()) *missing += ", ";
      *missing += name;
    }
    return false;
  }
  *out = reinterpret_cast<F>(p);
  return true;
}

inline bool fileExists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

inline std::string dirOf(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == std::string::npos ? std::string(".") : p.substr(0, s);
}

/**
 * Tries `candidates` in order: a path with a '/' must exist and is opened as it is, a bare file name
 * goes through the dynamic loader's search. `accept(handle, &why)` decides whether a library that
 * loaded is the one wanted (its symbols, its version); when it says no, the library is closed and
 * `why` recorded. Returns the first accepted handle (its real path in *path), or nullptr. Every
 * candidate tried is appended to *attempts, the accepted one with an empty error.
 */
inline void* openFirst(const std::vector<std::string>& candidates, std::vector<Attempt>* attempts,
                       const std::function<bool(void*, std::string*)>& accept, std::string* path,
                       int flags = RTLD_NOW | RTLD_LOCAL) {
  for (const std::string& cand : candidates) {
    Attempt a{cand, ""};
    if (cand.find('/') != std::string::npos && !fileExists(cand)) {
      a.error = "no such file";
      attempts->push_back(a);
      continue;
    }
    dlerror();
    void* h = dlopen(cand.c_str(), flags);
    if (!h) {
      const char* e = dlerror();
      a.error = e ? e : "dlopen failed";
      attempts->push_back(a);
      continue;
    }
    std::string why;
    if (!accept(h, &why)) {
      a.error = why.empty() ? "loaded, but not accepted" : why;
      attempts->push_back(a);
      dlclose(h);
      continue;
    }
    attempts->push_back(a);
    if (path) *path = loadedPath(h, cand);
    return h;
  }
  return nullptr;
}

}  // namespace dynload
}  // namespace alexnet
