// Calibration activations of a block set ([rows, cols]: X, X′, Y): on the device when they fit, else in host memory
// (page-locked where the backend offers it) and streamed to the device batch by batch.
import type { Backend, DType, Tensor } from '../engine/backend.js';
import { f32ToBf16 } from '../numerics/half.js';

export type Placement = 'device' | 'host';

export interface ActivationStore {
  readonly rows: number;
  readonly cols: number;
  readonly dtype: DType;
  readonly placement: Placement;
  /** Rows [r0, r0 + n) as a new device tensor [n, cols]. */
  read(r0: number, n: number): Tensor;
  /** Overwrite rows [r0, r0 + t.rows) with t. */
  write(r0: number, t: Tensor): void;
  free(): void;
}

class DeviceStore implements ActivationStore {
  readonly placement = 'device' as const;
  private t: Tensor;

  constructor(private readonly be: Backend, readonly rows: number, readonly cols: number, readonly dtype: DType, existing?: Tensor) {
    this.t = existing ?? be.zeros([rows, cols], dtype);
  }

  read(r0: number, n: number): Tensor {
    const out = this.be.zeros([n, this.cols], this.dtype);
    this.be.copyRows(out, 0, this.t, r0, n);
    return out;
  }

  write(r0: number, t: Tensor): void {
    this.be.copyRows(this.t, r0, t, 0, t.shape[0]);
  }

  free(): void {
    this.be.free(this.t);
  }
}

/** Host rows: bf16 bit patterns for bf16 stores (half the bytes), f32 otherwise. */
class HostStore implements ActivationStore {
  readonly placement = 'host' as const;
  private readonly bits?: Uint16Array;
  private readonly f32?: Float32Array;

  constructor(private readonly be: Backend, readonly rows: number, readonly cols: number, readonly dtype: DType) {
    const n = rows * cols;
    if (dtype !== 'bf16' && dtype !== 'f32') throw new Error(`host activation store: unsupported dtype ${dtype}`);
    const bytes = n * (dtype === 'bf16' ? 2 : 4);
    const buf = be.hostBuffer ? be.hostBuffer(bytes) : new ArrayBuffer(bytes);
    if (dtype === 'bf16') this.bits = new Uint16Array(buf, 0, n);
    else this.f32 = new Float32Array(buf, 0, n);
  }

  read(r0: number, n: number): Tensor {
    const a = r0 * this.cols;
    const b = (r0 + n) * this.cols;
    return this.bits ? this.be.fromBits(this.bits.subarray(a, b), [n, this.cols], 'bf16') : this.be.fromHost(this.f32!.subarray(a, b), [n, this.cols], 'f32');
  }

  write(r0: number, t: Tensor): void {
    const host = this.be.toHost(t); // f32 values
    const a = r0 * this.cols;
    if (this.bits) f32ToBf16(host, this.bits.subarray(a, a + host.length));
    else this.f32!.set(host, a);
  }

  free(): void {
    // Host memory is released by the garbage collector.
  }
}

export function createStore(be: Backend, rows: number, cols: number, dtype: DType, placement: Placement): ActivationStore {
  return placement === 'device' ? new DeviceStore(be, rows, cols, dtype) : new HostStore(be, rows, cols, dtype);
}

/** A device store over an existing [rows, cols] tensor (which it then owns). */
export function storeOf(be: Backend, t: Tensor): ActivationStore {
  return new DeviceStore(be, t.shape[0], t.shape[1], t.dtype, t);
}

export function dtypeBytes(d: DType): number {
  return d === 'f32' || d === 'i32' ? 4 : 2;
}

/**
 * Where the activations go: on the device when the three stores and the block's working set fit in 80 % of the free
 * device memory, else on the host. `fits: false` when even the working set of one block does not fit (the job
 * reports it, naming the settings to lower).
 */
export function chooseActivationPlacement(
  be: Backend, storeBytes: number, blockWorkingBytes: number, requested: Placement | 'auto',
): { placement: Placement; fits: boolean; freeBytes?: number } {
  const mem = be.memoryInfo?.();
  if (!mem) return { placement: requested === 'auto' ? 'device' : requested, fits: true }; // a host-memory backend: either is host memory
  const fits = blockWorkingBytes <= mem.freeBytes;
  if (requested !== 'auto') return { placement: requested, fits, freeBytes: mem.freeBytes };
  return { placement: 3 * storeBytes + blockWorkingBytes <= 0.8 * mem.freeBytes ? 'device' : 'host', fits, freeBytes: mem.freeBytes };
}
