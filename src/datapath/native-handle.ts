import { KernelError } from '../errors.js';

/**
 * A native object (the engine, the fast path) owned from TypeScript until close(): a call after that fails with one
 * line naming what was closed instead of reaching released native state.
 */
export abstract class NativeHandle<N extends { close(): void }> {
  protected native: N | undefined;

  protected constructor(
    native: N,
    /** How the closed error names it, e.g. `datapath on flannel0`. */
    private readonly what: string,
  ) {
    this.native = native;
  }

  /** Releases the native object. Idempotent. */
  close(): void {
    this.native?.close();
    this.native = undefined;
  }

  protected live(): N {
    if (!this.native) throw new KernelError(`${this.what} is closed`);
    return this.native;
  }
}
