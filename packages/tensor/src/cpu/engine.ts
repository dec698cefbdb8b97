/**
 * The native CPU engine behind the Engine interface: each CpuEngine is one device ("cpu:i") with its
 * own in-order queue thread and worker pool in C++ (native/cpu); the adapter (../native-engine.ts)
 * hands every op to the addon, which checks the arguments and queues the work.
 */
import { NativeEngine } from '../native-engine.js';
import { nativeAddon, type CpuAddonEngine } from './addon.js';

export class CpuEngine extends NativeEngine {
  /** @internal */ declare readonly native: CpuAddonEngine;

  constructor(index: number) {
    super('cpu', index, new (nativeAddon().NativeEngine)(index));
  }

  /**
   * Bounds the allocation cache at `bytes` (trimming to it); -1 restores the default bound,
   * max(1 GiB, 2 x peakLiveBytes).
   */
  setCacheLimit(bytes: number): void { this.native.setCacheLimit(bytes); }

  /** Test hook: queues an op that takes `ms` milliseconds. */
  sleep(ms: number): void { this.native.sleep(ms); }
}
