/**
 * The one error type of this package. Messages read like sentences that name the problem and the
 * file or folder it concerns ("val/ILSVRC2012_val_00000007.JPEG has no label in
 * LOC_val_solution.csv"); `path` carries that file or folder for programs.
 */
export class ImageNetDataError extends Error {
  readonly path: string | undefined;
  constructor(message: string, path?: string) {
    super(message);
    this.name = 'ImageNetDataError';
    this.path = path;
  }
}

/** Raised for a file that is empty, truncated or not an image; `prepare` lists and skips these. */
export class UndecodableImageError extends Error {
  readonly path: string;
  readonly reason: string;
  constructor(path: string, reason: string) {
    super(`${path} could not be decoded: ${reason}`);
    this.name = 'UndecodableImageError';
    this.path = path;
    this.reason = reason;
  }
}

const FS_REASONS: Record<string, string> = {
  ENOENT: 'the file does not exist',
  EACCES: 'permission denied',
  EPERM: 'the operation is not permitted',
  EISDIR: 'it is a folder',
  ERR_FS_EISDIR: 'it is a folder',
  ENOTDIR: 'a folder on its path is a file',
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is exhausted',
  EROFS: 'the file system is read-only',
  EMFILE: 'too many open files',
  EIO: 'an input/output error',
};

/**
 * Why a file operation failed, as a clause without the path ("the file does not exist"): Node's
 * own messages repeat the path and the system call ("ENOENT: no such file or directory, open '/x'").
 */
export function fsReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && FS_REASONS[code]) return FS_REASONS[code];
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n')[0]!;
}

/** An error as it crosses from a worker thread: its class, sentence and fields (not its prototype). */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  path?: string;
  reason?: string;
  code?: string;
}

export function serializeError(e: unknown): SerializedError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const x = e as Error & { path?: unknown; reason?: unknown; code?: unknown };
  return {
    name: x.name,
    message: x.message,
    ...(x.stack !== undefined ? { stack: x.stack } : {}),
    ...(typeof x.path === 'string' ? { path: x.path } : {}),
    ...(typeof x.reason === 'string' ? { reason: x.reason } : {}),
    ...(typeof x.code === 'string' ? { code: x.code } : {}),
  };
}

/**
 * Rebuilds an error from a worker thread as one Error of the same class (ImageNetDataError,
 * UndecodableImageError, TypeError, RangeError; others keep their name), with the same message and
 * the worker's stack, so that callers see "ImageNetDataError: cannot read shard ..." once.
 */
export function reviveError(s: SerializedError): Error {
  let e: Error;
  if (s.name === 'ImageNetDataError') e = new ImageNetDataError(s.message, s.path);
  else if (s.name === 'UndecodableImageError' && s.path !== undefined && s.reason !== undefined) e = new UndecodableImageError(s.path, s.reason);
  else if (s.name === 'TypeError') e = new TypeError(s.message);
  else if (s.name === 'RangeError') e = new RangeError(s.message);
  else {
    e = new Error(s.message);
    if (s.name !== 'Error') e.name = s.name;
  }
  if (s.code !== undefined) (e as NodeJS.ErrnoException).code = s.code;
  if (s.stack !== undefined) e.stack = s.stack;
  return e;
}

export function checkPositiveInteger(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new TypeError(`Expected a positive integer for ${what} but received ${String(value)} of type ${typeof value}`);
  }
  return value;
}

export function checkNonNegativeInteger(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`Expected a non-negative integer for ${what} but received ${String(value)} of type ${typeof value}`);
  }
  return value;
}
