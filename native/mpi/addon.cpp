// The N-API addon of @alexnet/distributed: MPI collectives (and NCCL, loaded at run time) on one
// dedicated thread.
//
// Threading: every MPI call of the process is made by one thread, the "MPI thread" started by init(),
// which calls MPI_Init_thread(MPI_THREAD_FUNNELED) itself and so is MPI's main thread; JavaScript
// never calls MPI. Each collective is a job appended to one FIFO queue on the JavaScript thread and
// run by the MPI thread in that order, so every rank runs its collectives in its submission order
// (MPI requires the same order on every rank). Completion goes back through one thread-safe function,
// in the same order, and resolves the job's Promise. Any number of jobs may be in flight; the typed
// arrays they use are held by references until their Promise settles. NCCL calls (communicator setup,
// all-reduce, broadcast) and the CUDA driver calls they need run on the same thread, in the same queue.
//
// Exit: the package's 'exit' listener calls shutdown(): with exit code 0 it queues MPI_Finalize after
// whatever is still queued and waits for it (bounded); with another code it does not finalize (the
// other ranks may be waiting in a collective this rank will never join; mpirun then ends the job).
// An environment cleanup hook does the same for a Node.js environment torn down without 'exit'.
// The thread-safe function is referenced only while jobs are pending, so the queue never keeps the
// process alive by itself.
//
// Built with -DALEXNET_WITH_MPI when the build found MPI; without it the addon still builds, reports
// why, and answers the NCCL probe.
#include <napi.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <dlfcn.h>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#ifdef ALEXNET_WITH_MPI
#include <mpi.h>
#endif

#include "args.h"
#include "dynlib.h"

namespace adist {

namespace {

constexpr const char* kNoMpi =
    "@alexnet/distributed was built without MPI: install OpenMPI (apt-get install openmpi-bin libopenmpi-dev) "
    "and rebuild with npm rebuild @alexnet/distributed";

enum class Op {
  Init, AllReduce, Broadcast, AllGather, Barrier, Finalize,
  NcclInit, NcclAllReduce, NcclBroadcast, NcclDestroy, CuAlloc, CuFree, CuUpload, CuDownload,
};
enum DType { kF32 = 0, kF64 = 1, kI32 = 2 };
enum RedOp { kSum = 0, kMax = 1, kMin = 2, kAvg = 3 };

struct HostBuf {
  void* data = nullptr;
  size_t count = 0;
  DType dtype = kF32;
  size_t Bytes() const { return count * (dtype == kF64 ? 8 : 4); }
  size_t Elem() const { return dtype == kF64 ? 8 : 4; }
};

struct Job {
  Op op;
  HostBuf a, b;
  int redop = kSum, root = 0, commId = -1, device = 0;
  bool ownStream = true;
  uint64_t stream = 0;
  std::vector<uint64_t> ptrs;
  std::vector<size_t> counts;
  DType devType = kF32;
  uint64_t devptr = 0;
  size_t bytes = 0;   // cuAlloc
  size_t count = 0;   // ncclBroadcast, in elements
  // results (written by the MPI thread, read on the JavaScript thread after the queue's hand-over)
  std::string error;
  int rank = 0, size = 0, provided = 0;
  uint64_t outAddr = 0;
  std::string text;
  // JavaScript side (touched on the JavaScript thread only)
  std::optional<Napi::Promise::Deferred> deferred;
  std::vector<Napi::Reference<Napi::Value>> keep;
  explicit Job(Op o) : op(o) {}
};

void CallJs(Napi::Env env, Napi::Function, void*, Job* job);
using Tsfn = Napi::TypedThreadSafeFunction<void, Job, CallJs>;

// ---- state shared by the two threads (the queue) ----
std::mutex g_mutex;
std::condition_variable g_wake, g_exited;
std::deque<Job*> g_queue;  // nullptr: the thread's exit
bool g_threadExited = false;
std::atomic<bool> g_deliver{true};

// ---- JavaScript-thread state ----
std::thread g_thread;
bool g_started = false;   // init() was called (the thread runs)
bool g_closed = false;    // finalize() was queued or shutdown() ran: no more jobs
bool g_shutdown = false;
napi_env g_owner = nullptr;
Tsfn g_tsfn;
size_t g_pending = 0;
int g_jsRank = 0, g_jsSize = 1;

// ---- MPI library facts (read before MPI_Init, on the JavaScript thread, at module load) ----
std::string g_mpiLibrary, g_mpiPath;
[[maybe_unused]] int g_mpiMajor = 0, g_mpiMinor = 0;

// ---- MPI-thread state ----
#ifdef ALEXNET_WITH_MPI
MPI_Comm g_comm = MPI_COMM_NULL;
bool g_mpiUp = false, g_mpiDown = false;
int g_rank = 0, g_size = 1;
#endif

struct NcclComm {
  ncclComm_t comm = nullptr;
  CUcontext ctx = nullptr;
  CUdevice dev = 0;
  int ordinal = 0;
  cudaStream_t stream = nullptr;
  bool live = false;
};
std::vector<NcclComm> g_ncclComms;

// ============================== the MPI thread ==============================

#ifdef ALEXNET_WITH_MPI
MPI_Datatype MpiType(DType t) { return t == kF64 ? MPI_DOUBLE : t == kI32 ? MPI_INT : MPI_FLOAT; }
MPI_Op MpiOp(int op) { return op == kMax ? MPI_MAX : op == kMin ? MPI_MIN : MPI_SUM; }

std::string MpiError(const char* what, int rc) {
  char s[MPI_MAX_ERROR_STRING];
  int n = 0;
  if (MPI_Error_string(rc, s, &n) != MPI_SUCCESS) n = 0;
  return std::string(what) + " failed: " + (n > 0 ? std::string(s, n) : "MPI error " + std::to_string(rc));
}

// Large all-reduces and broadcasts are cut into pieces of this many bytes (ALEXNET_MPI_CHUNK_BYTES,
// default 4 MiB; rank 0's value, broadcast at init, so every rank cuts alike): on a shared-memory
// transport one MPI_Allreduce of 244 MB runs at about a third of the speed of the same bytes in
// 4 MiB pieces (the pieces stay in cache).
int64_t g_chunkBytes = 4 << 20;

// Calls f(ptr, n) over chunks of at most g_chunkBytes (and INT_MAX elements: MPI counts are int), at
// least once.
template <typename F>
int Chunked(const HostBuf& b, F f) {
  size_t most = static_cast<size_t>(g_chunkBytes) / b.Elem();
  if (most < 1) most = 1;
  if (most > static_cast<size_t>(INT_MAX)) most = INT_MAX;
  size_t done = 0;
  do {
    size_t n = b.count - done;
    if (n > most) n = most;
    int rc = f(static_cast<char*>(b.data) + done * b.Elem(), static_cast<int>(n));
    if (rc != MPI_SUCCESS) return rc;
    done += n;
  } while (done < b.count);
  return MPI_SUCCESS;
}

// Waiting for the other ranks without taking a core (ALEXNET_MPI_WAIT=sleep, the default; rank 0's
// value, broadcast at init). MPI's blocking collectives busy-poll while a peer has not arrived yet:
// with gradient buckets started during backward, the MPI thread would spin for the rest of the other
// ranks' backward, on a core their compute threads (and this rank's) need. So every collective first
// meets the others in an MPI_Ibarrier tested with growing sleeps (20 us doubling to 500 us, after
// 50 us of plain testing), then runs blocking, with every rank present. 'spin' skips the meeting.
bool g_politeWait = true;

int MeetPolitely() {
  if (!g_politeWait || g_size < 2) return MPI_SUCCESS;
  MPI_Request req;
  int rc = MPI_Ibarrier(g_comm, &req);
  if (rc != MPI_SUCCESS) return rc;
  auto start = std::chrono::steady_clock::now();
  auto nap = std::chrono::microseconds(20);
  for (;;) {
    int flag = 0;
    rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || flag) return rc;
    if (std::chrono::steady_clock::now() - start < std::chrono::microseconds(50)) continue;
    std::this_thread::sleep_for(nap);
    if (nap < std::chrono::microseconds(500)) nap *= 2;
  }
}
#endif

ncclDataType_t NcclType(DType t) { return t == kF64 ? ncclFloat64 : t == kI32 ? ncclInt32 : ncclFloat32; }
ncclRedOp_t NcclOp(int op) { return op == kMax ? ncclMax : op == kMin ? ncclMin : op == kAvg ? ncclAvg : ncclSum; }

void ReleaseNcclComm(const CudaDriver* cu, NcclComm& c) {
  const NcclLib* nc = Nccl();
  if (cu && c.ctx) cu->ctxSetCurrent(c.ctx);
  if (nc && c.comm) nc->commDestroy(c.comm);
  if (cu && c.stream) cu->streamDestroy(c.stream);
  if (cu && c.ctx) cu->primaryCtxRelease(c.dev);
  c = NcclComm{};
}

void DestroyAllNccl() {
  const CudaDriver* cu = LoadCudaDriver(nullptr);
  for (NcclComm& c : g_ncclComms) if (c.live) ReleaseNcclComm(cu, c);
}

// The communicator of a job, made current on this thread; nullptr and job->error set if unusable.
NcclComm* CommOf(Job* j, const CudaDriver** cu) {
  std::string err;
  *cu = LoadCudaDriver(&err);
  if (j->commId < 0 || static_cast<size_t>(j->commId) >= g_ncclComms.size() || !g_ncclComms[j->commId].live) {
    j->error = "the NCCL communicator was destroyed";
    return nullptr;
  }
  NcclComm& c = g_ncclComms[j->commId];
  CUresult r = (*cu)->ctxSetCurrent(c.ctx);
  if (r != 0) { j->error = "cuCtxSetCurrent failed: " + CuErrorString(*cu, r); return nullptr; }
  return &c;
}

void RunNcclInit(Job* j) {
#ifndef ALEXNET_WITH_MPI
  j->error = kNoMpi;
#else
  if (!g_mpiUp || g_mpiDown) { j->error = "MPI is not initialized (initProcessGroup first)"; return; }
  const NcclLib* nc = Nccl();
  std::string local;
  const CudaDriver* cu = nullptr;
  NcclComm c;
  c.ordinal = j->device;
  if (!nc) local = "NCCL was not found on rank " + std::to_string(g_rank);
  if (local.empty()) cu = LoadCudaDriver(&local);
  CUresult r = 0;
  if (local.empty() && (r = cu->init(0)) != 0) local = "cuInit failed: " + CuErrorString(cu, r);
  if (local.empty()) {
    int n = 0;
    if ((r = cu->deviceGetCount(&n)) != 0) local = "cuDeviceGetCount failed: " + CuErrorString(cu, r);
    else if (j->device >= n)
      local = "CUDA device " + std::to_string(j->device) + " does not exist on rank " + std::to_string(g_rank) +
              " (it sees " + std::to_string(n) + ")";
  }
  if (local.empty() && (r = cu->deviceGet(&c.dev, j->device)) != 0) local = "cuDeviceGet failed: " + CuErrorString(cu, r);
  if (local.empty() && (r = cu->primaryCtxRetain(&c.ctx, c.dev)) != 0) {
    c.ctx = nullptr;
    local = "cuDevicePrimaryCtxRetain failed: " + CuErrorString(cu, r);
  }
  if (local.empty() && (r = cu->ctxSetCurrent(c.ctx)) != 0) local = "cuCtxSetCurrent failed: " + CuErrorString(cu, r);
  if (local.empty() && (r = cu->streamCreate(&c.stream, CU_STREAM_NON_BLOCKING)) != 0) {
    c.stream = nullptr;
    local = "cuStreamCreate failed: " + CuErrorString(cu, r);
  }
  if (local.empty()) {
    char name[256] = {0};
    if (cu->deviceGetName(name, sizeof name - 1, c.dev) == 0) j->text = name;
  }
  // Every rank must be ready before any rank enters an NCCL collective (or it would wait forever).
  int ok = local.empty() ? 1 : 0, all = 0;
  int rc = MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, g_comm);
  if (rc != MPI_SUCCESS || !all) {
    j->error = rc != MPI_SUCCESS ? MpiError("MPI_Allreduce (NCCL setup)", rc)
               : !local.empty() ? local : "NCCL setup failed on another rank (its error says why)";
    ReleaseNcclComm(cu, c);
    return;
  }
  // The unique id comes from rank 0 and travels over MPI, with rank 0's status, so that a failure
  // there is an error on every rank rather than a hang.
  struct { int status; ncclUniqueId id; } msg;
  std::memset(&msg, 0, sizeof msg);
  if (g_rank == 0) msg.status = static_cast<int>(nc->getUniqueId(&msg.id));
  rc = MPI_Bcast(&msg, static_cast<int>(sizeof msg), MPI_BYTE, 0, g_comm);
  if (rc != MPI_SUCCESS) { j->error = MpiError("MPI_Bcast (NCCL unique id)", rc); ReleaseNcclComm(cu, c); return; }
  if (msg.status != ncclSuccess) {
    j->error = "ncclGetUniqueId failed on rank 0: " + NcclErrorString(static_cast<ncclResult_t>(msg.status));
    ReleaseNcclComm(cu, c);
    return;
  }
  ncclResult_t nr = nc->commInitRank(&c.comm, g_size, msg.id, g_rank);
  if (nr != ncclSuccess) {
    c.comm = nullptr;
    j->error = "ncclCommInitRank failed: " + NcclErrorString(nr);
    ReleaseNcclComm(cu, c);
    return;
  }
  c.live = true;
  g_ncclComms.push_back(c);
  j->commId = static_cast<int>(g_ncclComms.size() - 1);
  j->rank = g_rank;
  j->size = g_size;
#endif
}

void Run(Job* j) {
  switch (j->op) {
#ifdef ALEXNET_WITH_MPI
    case Op::Init: {
      int already = 0;
      MPI_Initialized(&already);
      if (already) { j->error = "MPI was already initialized in this process (by another library?)"; return; }
      int provided = 0;
      int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      if (rc != MPI_SUCCESS) { j->error = MpiError("MPI_Init_thread", rc); return; }
      g_mpiUp = true;
      j->provided = provided;
      if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &g_comm)) != MPI_SUCCESS) { j->error = MpiError("MPI_Comm_dup", rc); return; }
      MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
      MPI_Comm_rank(g_comm, &g_rank);
      MPI_Comm_size(g_comm, &g_size);
      if (g_rank == 0) {
        const char* c = std::getenv("ALEXNET_MPI_CHUNK_BYTES");
        long long v = c && *c ? std::atoll(c) : 0;
        if (v > 0) g_chunkBytes = v;
      }
      if (g_rank == 0) {
        const char* w = std::getenv("ALEXNET_MPI_WAIT");
        if (w && std::strcmp(w, "spin") == 0) g_politeWait = false;
      }
      long long chunk[2] = { g_chunkBytes, g_politeWait ? 1 : 0 };
      if ((rc = MPI_Bcast(chunk, 2, MPI_LONG_LONG, 0, g_comm)) != MPI_SUCCESS) { j->error = MpiError("MPI_Bcast (chunk size)", rc); return; }
      g_chunkBytes = chunk[0];
      g_politeWait = chunk[1] != 0;
      j->rank = g_rank;
      j->size = g_size;
      if (provided < MPI_THREAD_FUNNELED) {
        j->error = "this MPI provides only MPI_THREAD_SINGLE; @alexnet/distributed needs MPI_THREAD_FUNNELED "
                   "(its MPI calls come from one thread of a multi-threaded process)";
      }
      return;
    }
    case Op::AllReduce: {
      int rc = MeetPolitely();
      if (rc != MPI_SUCCESS) { j->error = MpiError("MPI_Ibarrier", rc); return; }
      rc = Chunked(j->a, [&](void* p, int n) { return MPI_Allreduce(MPI_IN_PLACE, p, n, MpiType(j->a.dtype), MpiOp(j->redop), g_comm); });
      if (rc != MPI_SUCCESS) j->error = MpiError("MPI_Allreduce", rc);
      return;
    }
    case Op::Broadcast: {
      int rc = MeetPolitely();
      if (rc != MPI_SUCCESS) { j->error = MpiError("MPI_Ibarrier", rc); return; }
      rc = Chunked(j->a, [&](void* p, int n) { return MPI_Bcast(p, n, MpiType(j->a.dtype), j->root, g_comm); });
      if (rc != MPI_SUCCESS) j->error = MpiError("MPI_Bcast", rc);
      return;
    }
    case Op::AllGather: {
      int rc = MeetPolitely();
      if (rc != MPI_SUCCESS) { j->error = MpiError("MPI_Ibarrier", rc); return; }
      rc = MPI_Allgather(j->a.data, static_cast<int>(j->a.count), MpiType(j->a.dtype), j->b.data,
                             static_cast<int>(j->a.count), MpiType(j->a.dtype), g_comm);
      if (rc != MPI_SUCCESS) j->error = MpiError("MPI_Allgather", rc);
      return;
    }
    case Op::Barrier: {
      int rc = g_politeWait && g_size > 1 ? MeetPolitely() : MPI_Barrier(g_comm);
      if (rc != MPI_SUCCESS) j->error = MpiError("MPI_Barrier", rc);
      return;
    }
    case Op::Finalize: {
      DestroyAllNccl();
      if (g_mpiUp && !g_mpiDown) {
        if (g_comm != MPI_COMM_NULL) MPI_Comm_free(&g_comm);
        int rc = MPI_Finalize();
        g_mpiDown = true;
        if (rc != MPI_SUCCESS) j->error = MpiError("MPI_Finalize", rc);
      }
      return;
    }
#else
    case Op::Init: case Op::AllReduce: case Op::Broadcast: case Op::AllGather: case Op::Barrier:
      j->error = kNoMpi;
      return;
    case Op::Finalize:
      DestroyAllNccl();
      return;
#endif
    case Op::NcclInit:
      RunNcclInit(j);
      return;
    case Op::NcclAllReduce: {
      const CudaDriver* cu = nullptr;
      NcclComm* c = CommOf(j, &cu);
      if (!c) return;
      const NcclLib* nc = Nccl();
      cudaStream_t s = j->ownStream ? c->stream : reinterpret_cast<cudaStream_t>(static_cast<uintptr_t>(j->stream));
      ncclResult_t r = nc->groupStart();
      if (r != ncclSuccess) { j->error = "ncclGroupStart failed: " + NcclErrorString(r); return; }
      for (size_t i = 0; i < j->ptrs.size() && r == ncclSuccess; i++) {
        void* p = reinterpret_cast<void*>(static_cast<uintptr_t>(j->ptrs[i]));
        r = nc->allReduce(p, p, j->counts[i], NcclType(j->devType), NcclOp(j->redop), c->comm, s);
        if (r != ncclSuccess) j->error = "ncclAllReduce failed: " + NcclErrorString(r);
      }
      ncclResult_t e = nc->groupEnd();  // always closes the group, even after a failed call
      if (j->error.empty() && e != ncclSuccess) j->error = "ncclGroupEnd failed: " + NcclErrorString(e);
      if (!j->error.empty()) return;
      CUresult cr = cu->streamSynchronize(s);
      if (cr != 0) j->error = "cuStreamSynchronize after ncclAllReduce failed: " + CuErrorString(cu, cr);
      return;
    }
    case Op::NcclBroadcast: {
      const CudaDriver* cu = nullptr;
      NcclComm* c = CommOf(j, &cu);
      if (!c) return;
      cudaStream_t s = j->ownStream ? c->stream : reinterpret_cast<cudaStream_t>(static_cast<uintptr_t>(j->stream));
      void* p = reinterpret_cast<void*>(static_cast<uintptr_t>(j->devptr));
      ncclResult_t r = Nccl()->broadcast(p, p, j->count, NcclType(j->devType), j->root, c->comm, s);
      if (r != ncclSuccess) { j->error = "ncclBroadcast failed: " + NcclErrorString(r); return; }
      CUresult cr = cu->streamSynchronize(s);
      if (cr != 0) j->error = "cuStreamSynchronize after ncclBroadcast failed: " + CuErrorString(cu, cr);
      return;
    }
    case Op::NcclDestroy: {
      if (j->commId >= 0 && static_cast<size_t>(j->commId) < g_ncclComms.size() && g_ncclComms[j->commId].live) {
        ReleaseNcclComm(LoadCudaDriver(nullptr), g_ncclComms[j->commId]);
      }
      return;
    }
    case Op::CuAlloc: case Op::CuFree: case Op::CuUpload: case Op::CuDownload: {
      const CudaDriver* cu = nullptr;
      if (!CommOf(j, &cu)) return;
      CUresult r = 0;
      if (j->op == Op::CuAlloc) {
        CUdeviceptr p = 0;
        r = cu->memAlloc(&p, j->bytes ? j->bytes : 1);
        if (r == 0) j->outAddr = p;
        else j->error = "cuMemAlloc failed: " + CuErrorString(cu, r);
      } else if (j->op == Op::CuFree) {
        if ((r = cu->memFree(j->devptr)) != 0) j->error = "cuMemFree failed: " + CuErrorString(cu, r);
      } else if (j->op == Op::CuUpload) {
        // synchronize around the copy: the communicator's stream does not wait for the legacy stream
        if ((r = cu->ctxSynchronize()) == 0 && (r = cu->memcpyHtoD(j->devptr, j->a.data, j->a.Bytes())) == 0) r = cu->ctxSynchronize();
        if (r != 0) j->error = "copying to the device failed: " + CuErrorString(cu, r);
      } else {
        if ((r = cu->ctxSynchronize()) == 0) r = cu->memcpyDtoH(j->a.data, j->devptr, j->a.Bytes());
        if (r != 0) j->error = "copying from the device failed: " + CuErrorString(cu, r);
      }
      return;
    }
  }
}

[[maybe_unused]] void ThreadMain() {
  for (;;) {
    Job* j;
    {
      std::unique_lock<std::mutex> lock(g_mutex);
      g_wake.wait(lock, [] { return !g_queue.empty(); });
      j = g_queue.front();
      g_queue.pop_front();
    }
    if (!j) {
      std::lock_guard<std::mutex> lock(g_mutex);
      g_threadExited = true;
      g_exited.notify_all();
      return;
    }
    Run(j);
    if (!j->deferred) {
      delete j;  // an internal job (shutdown's finalize): nobody waits for it in JavaScript
    } else if (!g_deliver.load() || g_tsfn.NonBlockingCall(j) != napi_ok) {
      // The environment is going away: the job (and its references) is left to the process's exit.
    }
  }
}

// ============================== the JavaScript thread ==============================

Napi::Value ResultOf(Napi::Env env, Job* j) {
  switch (j->op) {
    case Op::Init: {
      Napi::Object o = Napi::Object::New(env);
      o.Set("rank", j->rank);
      o.Set("size", j->size);
      o.Set("threadLevel", j->provided);
      return o;
    }
    case Op::AllReduce: case Op::Broadcast:
      return j->keep[0].Value();
    case Op::AllGather:
      return j->keep[1].Value();
    case Op::NcclInit: {
      Napi::Object o = Napi::Object::New(env);
      o.Set("id", j->commId);
      o.Set("rank", j->rank);
      o.Set("size", j->size);
      o.Set("device", j->device);
      o.Set("name", j->text);
      return o;
    }
    case Op::CuAlloc:
      return Napi::BigInt::New(env, static_cast<uint64_t>(j->outAddr));
    case Op::CuDownload:
      return j->keep[0].Value();
    default:
      return env.Undefined();
  }
}

void CallJs(Napi::Env env, Napi::Function, void*, Job* j) {
  if (env == nullptr) return;  // the function is being torn down: leave the job
  if (j->op == Op::Init && j->error.empty()) { g_jsRank = j->rank; g_jsSize = j->size; }
  Napi::Value result = j->error.empty() ? ResultOf(env, j) : env.Undefined();
  if (j->error.empty()) j->deferred->Resolve(result);
  else j->deferred->Reject(Napi::Error::New(env, j->error).Value());
  for (auto& r : j->keep) r.Reset();
  delete j;
  if (--g_pending == 0) g_tsfn.Unref(env);
}

[[maybe_unused]] void CheckOwner(const Napi::Env& env) {
  if (g_owner && g_owner != static_cast<napi_env>(env)) {
    throw Napi::Error::New(env, "MPI belongs to another thread (Node.js worker) of this process: use the process group from that thread");
  }
}

Napi::Value Submit(Napi::Env env, Job* j) {
  j->deferred.emplace(Napi::Promise::Deferred::New(env));
  Napi::Promise p = j->deferred->Promise();
  if (g_pending++ == 0) g_tsfn.Ref(env);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_queue.push_back(j);
  }
  g_wake.notify_one();
  return p;
}

void RequireOpen(const Napi::Env& env, const char* what) {
#ifndef ALEXNET_WITH_MPI
  (void)what;
  throw Napi::Error::New(env, kNoMpi);
#else
  CheckOwner(env);
  if (!g_started) throw Napi::Error::New(env, std::string(what) + ": MPI is not initialized (call initProcessGroup() first)");
  if (g_closed) throw Napi::Error::New(env, std::string(what) + ": the MPI process group was closed");
#endif
}

constexpr const char* kArrays = "a Float32Array, Float64Array or Int32Array";

HostBuf BufArg(const Args& a, size_t i, const char* name) {
  Napi::Env env = a.env();
  Napi::Value v = a.at(i);
  if (!v.IsTypedArray()) a.expected(kArrays, name, v, true);
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok) a.fail(std::string("cannot read the typed array ") + name);
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok || detached) a.fail(std::string(name) + "'s ArrayBuffer is detached");
  HostBuf b;
  b.data = data;
  b.count = length;
  switch (type) {
    case napi_float32_array: b.dtype = kF32; break;
    case napi_float64_array: b.dtype = kF64; break;
    case napi_int32_array: b.dtype = kI32; break;
    default: a.expected(kArrays, name, v, true);
  }
  return b;
}

int OpArg(const Args& a, size_t i, bool allowAvg) {
  const std::string s = allowAvg ? a.oneOf(i, "op", {"sum", "max", "min", "avg"}) : a.oneOf(i, "op", {"sum", "max", "min"});
  return s == "max" ? kMax : s == "min" ? kMin : s == "avg" ? kAvg : kSum;
}

DType DTypeArg(const Args& a, size_t i) {
  const std::string s = a.oneOf(i, "dtype", {"float32", "float64", "int32"});
  return s == "float64" ? kF64 : s == "int32" ? kI32 : kF32;
}

int RootArg(const Args& a, size_t i) { return static_cast<int>(IntIn(a, i, "root", 0, g_jsSize - 1)); }
int CommArg(const Args& a, size_t i) { return static_cast<int>(IntIn(a, i, "communicator", 0, INT32_MAX)); }

// stream argument: undefined = the communicator's own stream, a bigint = that CUstream (0n: legacy default)
void StreamArg(const Args& a, size_t i, Job* j) {
  if (!a.given(i)) { j->ownStream = true; return; }
  j->ownStream = false;
  j->stream = AddressOf(a, a.at(i), "stream");
}

Napi::Reference<Napi::Value> Keep(const Napi::Value& v) { return Napi::Persistent(v); }

// ---- MPI ----

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifndef ALEXNET_WITH_MPI
  throw Napi::Error::New(env, kNoMpi);
#else
  CheckOwner(env);
  if (g_started) throw Napi::Error::New(env, "MPI was already initialized by this process (initProcessGroup() returns the same group)");
  if (g_shutdown) throw Napi::Error::New(env, "MPI cannot be initialized again after it was finalized");
  g_owner = env;
  g_tsfn = Tsfn::New(env, "@alexnet/distributed MPI", 0, 1);
  g_tsfn.Unref(env);
  g_started = true;
  g_thread = std::thread(ThreadMain);
  return Submit(env, new Job(Op::Init));
#endif
}

// The start of a collective on one buffer (argument 0): the group is open, the buffer is read and
// kept alive until the job is done.
std::unique_ptr<Job> InPlaceJob(const Napi::CallbackInfo& info, const Args& a, Op op) {
  auto j = std::make_unique<Job>(op);
  j->a = BufArg(a, 0, "buf");
  j->keep.push_back(Keep(info[0]));
  return j;
}

Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env(), "allReduce");
  Args a(info, "allReduce", 0);
  auto j = InPlaceJob(info, a, Op::AllReduce);
  j->redop = OpArg(a, 1, false);
  return Submit(info.Env(), j.release());
}

Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env(), "broadcast");
  Args a(info, "broadcast", 0);
  auto j = InPlaceJob(info, a, Op::Broadcast);
  j->root = RootArg(a, 1);
  return Submit(info.Env(), j.release());
}

Napi::Value AllGather(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env(), "allGather");
  Args a(info, "allGather", 0);
  auto j = std::make_unique<Job>(Op::AllGather);
  j->a = BufArg(a, 0, "send");
  j->b = BufArg(a, 1, "recv");
  if (j->a.count > static_cast<size_t>(INT_MAX)) a.fail("send holds " + std::to_string(j->a.count) + " elements, more than MPI's 2^31-1");
  const size_t want = j->a.count * static_cast<size_t>(g_jsSize);
  if (j->b.dtype != j->a.dtype || j->b.count != want) {
    a.fail("recv must be of send's type and hold size x send.length = " + std::to_string(want) + " elements, but holds " +
           std::to_string(j->b.count));
  }
  j->keep.push_back(Keep(info[0]));
  j->keep.push_back(Keep(info[1]));
  return Submit(info.Env(), j.release());
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env(), "barrier");
  return Submit(info.Env(), new Job(Op::Barrier));
}

// Queues MPI_Finalize after everything queued so far; later submissions throw.
Napi::Value Finalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env, "close");
  g_closed = true;
  return Submit(env, new Job(Op::Finalize));
}

// Stops the MPI thread (synchronous; for exit): with finalize, MPI_Finalize runs after what is queued,
// waiting at most timeoutMs for it; without, the thread is left where it is (a collective the other
// ranks may never complete). Returns true when the thread ended in time.
bool Shutdown(int timeoutMs, bool finalize) {
  if (!g_started || g_shutdown) return true;
  g_shutdown = true;
  g_closed = true;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (finalize) g_queue.push_back(new Job(Op::Finalize));  // no-op when close() already finalized
    g_queue.push_back(nullptr);
  }
  g_wake.notify_one();
  bool ended;
  {
    std::unique_lock<std::mutex> lock(g_mutex);
    ended = g_exited.wait_for(lock, std::chrono::milliseconds(timeoutMs < 0 ? 0 : timeoutMs), [] { return g_threadExited; });
  }
  g_deliver.store(false);
  if (ended) g_thread.join();
  else g_thread.detach();
  return ended;
}

Napi::Value ShutdownJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (g_owner && g_owner != static_cast<napi_env>(env)) return Napi::Boolean::New(env, true);
  Args a(info, "shutdown", 0);
  const int timeout = static_cast<int>(IntIn(a, 0, "timeoutMs", 0, INT32_MAX));
  const bool finalize = info[1].ToBoolean().Value();
  return Napi::Boolean::New(env, Shutdown(timeout, finalize));
}

Napi::Value Pending(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(g_pending)); }

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#ifdef ALEXNET_WITH_MPI
  o.Set("mpi", true);
  o.Set("library", g_mpiLibrary);
  o.Set("path", g_mpiPath);
  o.Set("standard", std::to_string(g_mpiMajor) + "." + std::to_string(g_mpiMinor));
#else
  o.Set("mpi", false);
  o.Set("reason", kNoMpi);
#endif
  o.Set("initialized", g_started);
  o.Set("closed", g_closed);
  return o;
}

// ---- NCCL ----

Napi::Value NcclProbeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "ncclProbe", 0);
  if (!info[0].IsArray()) a.expected("an array of library paths", "candidates", info[0], true);
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<std::string> cands;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsString()) a.expected("a string", "candidates[" + std::to_string(i) + "]", v, true);
    cands.push_back(v.As<Napi::String>().Utf8Value());
  }
  NcclProbe p = ProbeNccl(cands);
  Napi::Object o = Napi::Object::New(env);
  o.Set("found", p.found);
  if (p.found) {
    int ma, mi, pa;
    DecodeNcclVersion(p.versionCode, &ma, &mi, &pa);
    o.Set("path", p.path);
    o.Set("version", std::to_string(ma) + "." + std::to_string(mi) + "." + std::to_string(pa));
    o.Set("versionCode", p.versionCode);
  }
  Napi::Array attempts = Napi::Array::New(env, p.attempts.size());
  for (size_t i = 0; i < p.attempts.size(); i++) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("path", p.attempts[i].path);
    t.Set("error", p.attempts[i].error);
    attempts.Set(static_cast<uint32_t>(i), t);
  }
  o.Set("attempts", attempts);
  return o;
}

Napi::Value NcclInitJs(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env(), "initNcclGroup");
  // Queued even when this rank has no NCCL: the job agrees with the other ranks first, so that every
  // rank fails together instead of the others waiting for this one.
  Args a(info, "initNcclGroup", 0);
  auto j = std::make_unique<Job>(Op::NcclInit);
  j->device = static_cast<int>(IntIn(a, 0, "device", 0, 4096));
  return Submit(info.Env(), j.release());
}

Napi::Value NcclAllReduceJs(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env(), "nccl allReduce");
  Args a(info, "nccl allReduce", 0);
  auto j = std::make_unique<Job>(Op::NcclAllReduce);
  j->commId = CommArg(a, 0);
  if (!info[1].IsArray()) a.expected("an array of bigint device addresses", "ptrs", info[1], true);
  if (!info[2].IsArray()) a.expected("an array of element counts", "counts", info[2], true);
  Napi::Array ptrs = info[1].As<Napi::Array>(), counts = info[2].As<Napi::Array>();
  if (ptrs.Length() == 0 || ptrs.Length() != counts.Length()) {
    a.fail("ptrs and counts must have the same length, at least 1 (received " + std::to_string(ptrs.Length()) + " and " +
           std::to_string(counts.Length()) + ")");
  }
  for (uint32_t i = 0; i < ptrs.Length(); i++) {
    j->ptrs.push_back(AddressOf(a, ptrs.Get(i), "ptrs[" + std::to_string(i) + "]"));
    j->counts.push_back(static_cast<size_t>(a.sizeOf(counts.Get(i), "counts[" + std::to_string(i) + "]")));
  }
  j->devType = DTypeArg(a, 3);
  j->redop = OpArg(a, 4, true);
  StreamArg(a, 5, j.get());
  if (j->redop == kAvg && Nccl() && Nccl()->versionCode < 21000) a.fail("'avg' needs NCCL 2.10 or later");
  return Submit(info.Env(), j.release());
}

Napi::Value NcclBroadcastJs(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env(), "nccl broadcast");
  Args a(info, "nccl broadcast", 0);
  auto j = std::make_unique<Job>(Op::NcclBroadcast);
  j->commId = CommArg(a, 0);
  j->devptr = AddressOf(a, a.at(1), "ptr");
  j->count = static_cast<size_t>(a.size(2, "count"));
  j->devType = DTypeArg(a, 3);
  j->root = RootArg(a, 4);
  StreamArg(a, 5, j.get());
  return Submit(info.Env(), j.release());
}

Napi::Value NcclDestroyJs(const Napi::CallbackInfo& info) {
  RequireOpen(info.Env(), "nccl close");
  Args a(info, "nccl close", 0);
  auto j = std::make_unique<Job>(Op::NcclDestroy);
  j->commId = CommArg(a, 0);
  return Submit(info.Env(), j.release());
}

Napi::Value CuJs(const Napi::CallbackInfo& info, Op op, const char* name) {
  RequireOpen(info.Env(), name);
  Args a(info, name, 0);
  auto j = std::make_unique<Job>(op);
  j->commId = CommArg(a, 0);
  if (op == Op::CuAlloc) {
    j->bytes = static_cast<size_t>(a.size(1, "bytes"));
  } else {
    j->devptr = AddressOf(a, a.at(1), "ptr");
    if (op != Op::CuFree) {
      j->a = BufArg(a, 2, "host");
      j->keep.push_back(Keep(info[2]));
    }
  }
  return Submit(info.Env(), j.release());
}

// ---- module ----

void ReadMpiFacts() {
#ifdef ALEXNET_WITH_MPI
  // MPI_Get_library_version and MPI_Get_version may be called before MPI_Init (MPI 3.1, 8.7): read
  // once here, on the JavaScript thread, before the MPI thread exists.
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(lib, &len) == MPI_SUCCESS) {
    g_mpiLibrary.assign(lib, len > 0 ? static_cast<size_t>(len) : 0);
    while (!g_mpiLibrary.empty() && (g_mpiLibrary.back() == '\n' || g_mpiLibrary.back() == '\0')) g_mpiLibrary.pop_back();
  }
  MPI_Get_version(&g_mpiMajor, &g_mpiMinor);
  Dl_info di;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &di) && di.dli_fname) g_mpiPath = di.dli_fname;
#endif
}

Napi::Object ModuleInit(Napi::Env env, Napi::Object exports) {
  ReadMpiFacts();
  napi_env self = env;
  env.AddCleanupHook([self] {
    // The environment that owns MPI torn down without the package's 'exit' listener having run (a
    // worker thread that initialized the group). Other environments that loaded the addon leave it.
    if (g_owner == self && g_started && !g_shutdown) Shutdown(5000, true);
  });
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("allReduce", Napi::Function::New(env, AllReduce));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("allGather", Napi::Function::New(env, AllGather));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("shutdown", Napi::Function::New(env, ShutdownJs));
  exports.Set("pending", Napi::Function::New(env, Pending));
  exports.Set("ncclProbe", Napi::Function::New(env, NcclProbeJs));
  exports.Set("ncclInit", Napi::Function::New(env, NcclInitJs));
  exports.Set("ncclAllReduce", Napi::Function::New(env, NcclAllReduceJs));
  exports.Set("ncclBroadcast", Napi::Function::New(env, NcclBroadcastJs));
  exports.Set("ncclDestroy", Napi::Function::New(env, NcclDestroyJs));
  exports.Set("cuAlloc", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return CuJs(i, Op::CuAlloc, "nccl alloc"); }));
  exports.Set("cuFree", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return CuJs(i, Op::CuFree, "nccl free"); }));
  exports.Set("cuUpload", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return CuJs(i, Op::CuUpload, "nccl upload"); }));
  exports.Set("cuDownload", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return CuJs(i, Op::CuDownload, "nccl download"); }));
  return exports;
}

}  // namespace

}  // namespace adist

static Napi::Object RegisterAddon(Napi::Env env, Napi::Object exports) { return adist::ModuleInit(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, RegisterAddon)
