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
