/** Every refusal of @alexnet/interop: one sentence that names the file and what is wrong with it. */
export class InteropError extends Error {
  override name = 'InteropError';
  /** The file the sentence is about, when there is one. */
  readonly file: string | undefined;

  constructor(message: string, file?: string) {
    super(message);
    this.file = file;
  }
}
