// Calibration activations of a block set ([rows, cols]: the FP path X→Y and X′): on the device when they fit, else in
// host memory (page-locked where the backend offers it) or in a file (positional reads and writes of one batch at a
// time), streamed to the device batch by batch. The file is opened by the caller (paroquant/ does no file system
// work): a DiskStore takes positional read/write functions.
import type { Backend, DType, Tensor } from '../engine/backend.js';
import { f32ToBf16 } from '../numerics/half.js';

export type Placement = 'device' | 'host' | 'disk';

/** Positional I/O on a backing file of a disk store (the job opens it; free() closes and removes it). */
export interface BackingFile {
  /** A fresh buffer holding bytes [pos, pos + len). */
  read(pos: number, len: number): Uint8Array;
  writeAt(src: Uint8Array, pos: number): void;
  /** Optional read-ahead of a range the next read() will probably ask for (overlapping the current batch's compute). */
  prefetch?(pos: number, len: number): void;
  close(): void;
}

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

/** Rows in a file, bf16 bit patterns for bf16 stores, f32 otherwise (as HostStore): one batch in memory at a time. */
class DiskStore implements ActivationStore {
  readonly placement = 'disk' as const;
  private readonly elemBytes: number;

  constructor(private readonly be: Backend, readonly rows: number, readonly cols: number, readonly dtype: DType, private readonly file: BackingFile) {
    if (dtype !== 'bf16' && dtype !== 'f32') throw new Error(`disk activation store: unsupported dtype ${dtype}`);
    this.elemBytes = dtype === 'bf16' ? 2 : 4;
  }

  read(r0: number, n: number): Tensor {
    const rowBytes = this.cols * this.elemBytes;
    // A fresh buffer per batch: a backend may keep a host array it was given (the cpu backend does).
    const buf = this.file.read(r0 * rowBytes, n * rowBytes);
    // Batches are read in order (training, validation, FP targets, X′ propagation): start on the next one.
    const next = Math.min(n, this.rows - r0 - n);
    if (next > 0) this.file.prefetch?.((r0 + n) * rowBytes, next * rowBytes);
    return this.dtype === 'bf16'
      ? this.be.fromBits(new Uint16Array(buf.buffer, buf.byteOffset, n * this.cols), [n, this.cols], 'bf16')
      : this.be.fromHost(new Float32Array(buf.buffer, buf.byteOffset, n * this.cols), [n, this.cols], 'f32');
  }

  write(r0: number, t: Tensor): void {
    const host = this.be.toHost(t); // f32 values
    const data = this.dtype === 'bf16' ? f32ToBf16(host) : host;
    this.file.writeAt(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), r0 * this.cols * this.elemBytes);
  }

  free(): void {
    this.file.close();
  }
}

export function createStore(be: Backend, rows: number, cols: number, dtype: DType, placement: Placement, file?: BackingFile): ActivationStore {
  if (placement === 'disk') {
    if (!file) throw new Error('a disk activation store needs a backing file');
    return new DiskStore(be, rows, cols, dtype, file);
  }
  return placement === 'device' ? new DeviceStore(be, rows, cols, dtype) : new HostStore(be, rows, cols, dtype);
}

/** Bytes of one store of rows × cols values in dtype as it is held (device, host or disk alike). */
export function storeBytes(rows: number, cols: number, dtype: DType): number {
  return rows * cols * dtypeBytes(dtype);
}

/** A device store over an existing [rows, cols] tensor (which it then owns). */
export function storeOf(be: Backend, t: Tensor): ActivationStore {
  return new DeviceStore(be, t.shape[0], t.shape[1], t.dtype, t);
}

export function dtypeBytes(d: DType): number {
  return d === 'f32' || d === 'i32' ? 4 : 2;
}

export interface PlacementLimits {
  /** Free device memory as measured (Backend.memoryInfo); undefined on a host-memory backend. */
  freeDeviceBytes?: number;
  /** Host memory the stores may take (page-locked). */
  maxHostBytes: number;
  /** Free space where a disk store would go; undefined when unknown. */
  freeDiskBytes?: number;
}

export type ActivationPlan =
  | { ok: true; placements: Placement[]; usableDeviceBytes?: number }
  | { ok: false; reason: string };

/** Share of the measured free device memory the block and the stores may use (allocator slack, library workspaces). */
export const DEVICE_USABLE_FRACTION = 0.9;

const gib = (b: number): string => `${(b / 2 ** 30).toFixed(1)} GiB`;

/**
 * Where each of `count` stores of `bytesPerStore` goes. On a GPU the block's working set comes first; auto then puts
 * as many stores on the device as fit in the rest of DEVICE_USABLE_FRACTION of the free memory, the others in host
 * memory while they fit maxHostBytes, the rest on disk. A named placement puts every store there. ok: false with the
 * numbers when the working set or a named placement does not fit (the job reports it before any work).
 */
export function planActivations(
  count: number, bytesPerStore: number, workingBytes: number, requested: Placement | 'auto', lim: PlacementLimits,
): ActivationPlan {
  const usable = lim.freeDeviceBytes === undefined ? undefined : DEVICE_USABLE_FRACTION * lim.freeDeviceBytes;
  if (usable !== undefined && workingBytes > usable) {
    return { ok: false, reason: `one decoder block needs about ${gib(workingBytes)} of GPU memory for optimization, but ${gib(usable)} are usable (${Math.round(DEVICE_USABLE_FRACTION * 100)} % of ${gib(lim.freeDeviceBytes!)} free)` };
  }
  const all = (p: Placement): Placement[] => Array<Placement>(count).fill(p);
  const total = count * bytesPerStore;
  const diskFits = (n: number) => lim.freeDiskBytes === undefined || n * bytesPerStore <= lim.freeDiskBytes;
  const diskMsg = (n: number) => `${n} activation store(s) of ${gib(bytesPerStore)} need ${gib(n * bytesPerStore)} of disk, but ${gib(lim.freeDiskBytes ?? 0)} are free there`;
  if (requested === 'device') {
    if (usable !== undefined && workingBytes + total > usable) {
      return { ok: false, reason: `activations on the GPU need ${gib(total)} (${count} × ${gib(bytesPerStore)}) plus ${gib(workingBytes)} for the block, but ${gib(usable)} are usable` };
    }
    return { ok: true, placements: all('device'), usableDeviceBytes: usable };
  }
  if (requested === 'host') {
    if (total > lim.maxHostBytes) return { ok: false, reason: `activations in host memory need ${gib(total)} (${count} × ${gib(bytesPerStore)}), more than the host limit of ${gib(lim.maxHostBytes)}` };
    return { ok: true, placements: all('host'), usableDeviceBytes: usable };
  }
  if (requested === 'disk') {
    if (!diskFits(count)) return { ok: false, reason: diskMsg(count) };
    return { ok: true, placements: all('disk'), usableDeviceBytes: usable };
  }
  // auto. A host-memory backend: device tensors are host memory already.
  if (usable === undefined) return { ok: true, placements: all('device') };
  const placements: Placement[] = [];
  let device = usable - workingBytes;
  let host = lim.maxHostBytes;
  for (let i = 0; i < count; i++) {
    if (bytesPerStore <= device) {
      placements.push('device');
      device -= bytesPerStore;
    } else if (bytesPerStore <= host) {
      placements.push('host');
      host -= bytesPerStore;
    } else placements.push('disk');
  }
  const onDisk = placements.filter((p) => p === 'disk').length;
  if (onDisk > 0 && !diskFits(onDisk)) {
    return { ok: false, reason: `${diskMsg(onDisk)} (GPU: ${gib(usable - workingBytes)} left after the block's ${gib(workingBytes)}; host limit ${gib(lim.maxHostBytes)})` };
  }
  return { ok: true, placements, usableDeviceBytes: usable };
}
