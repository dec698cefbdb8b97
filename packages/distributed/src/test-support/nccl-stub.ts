// A stand-in libnccl.so.2 for the loader's tests (compiled here with cc; nothing of NVIDIA's): it
// exports the NCCL 2 functions the package resolves, with ncclGetVersion saying 2.19.3 and every
// other call failing. `complete: false` leaves out all but ncclGetVersion (a library that is not NCCL).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SOURCE = `
typedef struct { char internal[128]; } ncclUniqueId;
int ncclGetVersion(int* v) { *v = 21903; return 0; }
#ifndef PARTIAL
int ncclGetUniqueId(ncclUniqueId* id) { (void)id; return 5; }
int ncclCommInitRank(void** c, int n, ncclUniqueId id, int r) { (void)c; (void)n; (void)id; (void)r; return 5; }
int ncclCommDestroy(void* c) { (void)c; return 0; }
const char* ncclGetErrorString(int r) { (void)r; return "stub"; }
int ncclAllReduce(const void* s, void* d, unsigned long n, int t, int o, void* c, void* st) { (void)s; (void)d; (void)n; (void)t; (void)o; (void)c; (void)st; return 5; }
int ncclBroadcast(const void* s, void* d, unsigned long n, int t, int r, void* c, void* st) { (void)s; (void)d; (void)n; (void)t; (void)r; (void)c; (void)st; return 5; }
int ncclGroupStart(void) { return 0; }
int ncclGroupEnd(void) { return 0; }
#endif
`;

/** Whether a C compiler is here to build the stub. */
export function haveCc(): boolean {
  return spawnSync('cc', ['--version']).status === 0;
}

/** Builds <dir>/libnccl.so.2 and returns its path. */
export function buildNcclStub(dir: string, complete = true): string {
  mkdirSync(dir, { recursive: true });
  const src = join(dir, 'stub.c');
  writeFileSync(src, SOURCE);
  const out = join(dir, 'libnccl.so.2');
  const r = spawnSync('cc', ['-shared', '-fPIC', ...(complete ? [] : ['-DPARTIAL']), '-o', out, src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc failed: ${r.stderr}`);
  return out;
}
