/**
 * Devices: "backend:index" names ("cpu:0", "cpu:1", "cuda:0", "reference:0"). Each device owns one
 * engine, i.e. one in-order queue (see backend.ts). Two devices run at the same time, which is what
 * lets the paper's two towers (§3.2) run side by side on two CPU cores as on two GPUs.
 *
 * Cores are shared out among the devices in use of host-threaded backends (Backend.hostThreaded): one
 * device gets every core, two get half each, and so on (at least one each). `setThreads` on a device
 * pins its share instead.
 */
import { availableParallelism } from 'node:os';
import type { Backend, Engine } from './backend.js';

const backends = new Map<string, Backend>();
const devices = new Map<string, Device>();

export function registerBackend(backend: Backend): void {
  backends.set(backend.name, backend);
}

export function listBackends(): { name: string; available: boolean; reason?: string }[] {
  return [...backends.values()].map((b) => ({ name: b.name, ...b.availability() }));
}

export function getBackend(name: string): Backend | undefined {
  return backends.get(name);
}

export interface DeviceMemory {
  tensors: number;
  bytes: number;
}

export class Device {
  /** Live tensors and bytes of storage on this device (for leak tests: see memory()). */
  readonly stats: DeviceMemory = { tensors: 0, bytes: 0 };
  private engineInstance: Engine | undefined;
  private pinnedThreads: number | undefined;

  constructor(readonly backend: Backend, readonly index: number) {}

  get name(): string {
    return `${this.backend.name}:${this.index}`;
  }

  /** The engine behind this device, created on first use. */
  get engine(): Engine {
    if (!this.engineInstance) {
      this.engineInstance = this.backend.createEngine(this.index);
      rebalanceThreads();
    }
    return this.engineInstance;
  }

  get started(): boolean {
    return this.engineInstance !== undefined;
  }

  /** Pins this device's worker threads (undefined returns it to the automatic split). */
  setThreads(threads: number | undefined): void {
    if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) {
      throw new RangeError(`Expected a positive integer for threads but received ${String(threads)}`);
    }
    this.pinnedThreads = threads;
    rebalanceThreads();
  }

  get threads(): number {
    return this.engineInstance?.getThreads() ?? this.pinnedThreads ?? 0;
  }

  /** Resolves when every op queued on this device so far has finished. */
  synchronize(): Promise<void> {
    return this.engineInstance ? this.engineInstance.synchronize() : Promise.resolve();
  }

  synchronizeSync(): void {
    this.engineInstance?.synchronizeSync();
  }

  toString(): string {
    return this.name;
  }

  /** @internal */
  applyThreads(auto: number): void {
    this.engineInstance?.setThreads(this.pinnedThreads ?? auto);
  }

  /** @internal */
  get isPinned(): boolean {
    return this.pinnedThreads !== undefined;
  }
}

let coreCount = availableParallelism();

/** Overrides the number of cores shared out among devices (default: os.availableParallelism()). */
export function setCoreCount(cores: number): void {
  if (!Number.isInteger(cores) || cores < 1) throw new RangeError(`Expected a positive integer for cores but received ${String(cores)}`);
  coreCount = cores;
  rebalanceThreads();
}

function rebalanceThreads(): void {
  const active = [...devices.values()].filter((d) => d.started && d.backend.hostThreaded);
  const pinned = active.filter((d) => d.isPinned).reduce((s, d) => s + d.threads, 0);
  const free = active.filter((d) => !d.isPinned);
  const share = Math.max(1, Math.floor((coreCount - pinned) / Math.max(1, free.length)));
  for (const d of active) d.applyThreads(share);
  for (const d of devices.values()) if (d.started && !d.backend.hostThreaded) d.applyThreads(1);
}

const DEVICE_RE = /^([a-z][a-z0-9-]*)(?::(\d+))?$/;

/** The device for a name like "cpu:1" (index 0 when omitted). */
export function device(spec: string | Device): Device {
  if (spec instanceof Device) return spec;
  if (typeof spec !== 'string') throw new TypeError(`Expected a device name like "cpu:0" but received ${describe(spec)}`);
  const m = DEVICE_RE.exec(spec.trim());
  if (!m) throw new TypeError(`Expected a device name like "cpu:0" or "cuda:1" but received "${spec}"`);
  const name = m[1]!, index = Number(m[2] ?? 0);
  const backend = backends.get(name);
  if (!backend) {
    throw new Error(`Unknown device "${spec}": no backend named "${name}" (known: ${[...backends.keys()].join(', ')})`);
  }
  const key = `${name}:${index}`;
  let d = devices.get(key);
  if (!d) {
    const { available, reason } = backend.availability();
    if (!available) throw new Error(`Device "${key}" is not available: ${reason ?? 'no reason given'}`);
    const count = backend.deviceCount();
    if (index >= count) throw new Error(`Device "${key}" does not exist: the ${name} backend has ${count} device(s)`);
    d = new Device(backend, index);
    devices.set(key, d);
  }
  return d;
}

let defaultDeviceName: string | undefined;

/** The device tensors are created on when none is given: "cpu:0" when the native engine loads, else "reference:0". */
export function defaultDevice(): Device {
  if (defaultDeviceName) return device(defaultDeviceName);
  const cpu = backends.get('cpu');
  return device(cpu && cpu.availability().available ? 'cpu:0' : 'reference:0');
}

export function setDefaultDevice(spec: string | Device): void {
  defaultDeviceName = device(spec).name;
}

/** Devices created so far. */
export function listDevices(): Device[] {
  return [...devices.values()];
}

/** Live tensors and bytes, per device and in total. */
export function memory(): { tensors: number; bytes: number; devices: Record<string, DeviceMemory> } {
  const out: Record<string, DeviceMemory> = {};
  let tensors = 0, bytes = 0;
  for (const d of devices.values()) {
    out[d.name] = { ...d.stats };
    tensors += d.stats.tensors;
    bytes += d.stats.bytes;
  }
  return { tensors, bytes, devices: out };
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'object') return `an object of type ${(v as object).constructor?.name ?? 'Object'}`;
  return `${String(v)} of type ${typeof v}`;
}
