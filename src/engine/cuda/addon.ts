// Loading of the native addon (native/build/paro_cuda.node) and its typed surface. Device pointers are JS numbers,
// dtypes are the codes of dtypes.ts; every function throws an Error (code PARO_CUDA or PARO_ARG) on failure.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Ptr = number;

export interface NativeDevice {
  name: string;
  totalMemoryBytes: number;
  ccMajor: number;
  ccMinor: number;
  smCount: number;
}

export interface NativeProbe {
  runtimeVersion: number;
  driverVersion: number;
  deviceCount: number;
  /** cudaError_t of cudaGetDeviceCount; 0 = success. */
  error: number;
  errorName: string;
  errorString: string;
  libcudaFound: boolean;
  devices: NativeDevice[];
}

export interface NativeMemStats {
  liveBytes: number;
  cachedBytes: number;
  peakBytes: number;
  mallocs: number;
  hits: number;
  /** Device memory the driver reports free / in total (cudaMemGetInfo). */
  freeBytes: number;
  totalBytes: number;
}

/** Attention sizes as the kernels take them (kvStride and scale resolved). */
export interface NativeAttnDims {
  batch: number; tq: number; tk: number; kvStride: number; heads: number; kvHeads: number; headDim: number; scale: number;
}

/**
 * Mask kinds: 0 causal (per-entry offsets, when given, in the attention call's anchors argument), 1 full (also
 * prefix), 2 dflash.
 */
export interface NativeAttnMask {
  kind: 0 | 1 | 2; qOffset: number; ctxLen: number; blockSize: number; nBlocks: number;
}

type TA = Float32Array | Int32Array | Uint16Array | Uint8Array | Float64Array;

export interface NativeAddon {
  probe(): NativeProbe;
  cublasProbe(): { ok: boolean; path?: string; error?: string };
  init(device: number, debug: boolean): NativeDevice & { cublasVersion: number };
  alloc(bytes: number): Ptr;
  free(p: Ptr): void;
  memStats(): NativeMemStats;
  hostAlloc(bytes: number): ArrayBuffer;
  emptyCache(): void;
  upload(dst: Ptr, src: TA): void;
  download(src: Ptr, dst: TA): void;
  memset(dst: Ptr, bytes: number): void;
  copy(dst: Ptr, src: Ptr, bytes: number): void;
  copy2d(dst: Ptr, dPitch: number, src: Ptr, sPitch: number, widthBytes: number, rows: number): void;
  synchronize(): void;
  lastKernel(): string;
  cast(src: Ptr, sdt: number, dst: Ptr, ddt: number, n: number): void;
  fill(dst: Ptr, dt: number, n: number, value: number): void;
  random(dst: Ptr, dt: number, n: number, seed: number): void;
  add(a: Ptr, adt: number, b: Ptr, bdt: number, out: Ptr, odt: number, n: number, bcastC: number): void;
  axpy(a: Ptr, adt: number, b: Ptr, bdt: number, n: number, alpha: number): void;
  scale(a: Ptr, adt: number, out: Ptr, odt: number, n: number, alpha: number): void;
  colOp(a: Ptr, adt: number, v: Ptr, vdt: number, out: Ptr, odt: number, n: number, C: number, div: boolean): void;
  swiglu(g: Ptr, gdt: number, u: Ptr, udt: number, h: Ptr, hdt: number, n: number): void;
  swigluBwd(dh: Ptr, dhdt: number, g: Ptr, gdt: number, u: Ptr, udt: number, dg: Ptr, dgdt: number, du: Ptr,
    dudt: number, n: number): void;
  adamw(p: Ptr, pdt: number, g: Ptr, gdt: number, m: Ptr, mdt: number, v: Ptr, vdt: number, n: number, lr: number,
    beta1: number, beta2: number, eps: number, wd: number, stepSize: number, sqrtBc2: number): void;
  gatherRows(table: Ptr, ids: Int32Array, out: Ptr, rowBytes: number): void;
  /** dst[rows[i]] = src[i] (cols elements a row; converted when the dtypes differ). */
  scatterRows(src: Ptr, sdt: number, dst: Ptr, ddt: number, rows: Int32Array, cols: number): void;
  cast2d(src: Ptr, sdt: number, sPitch: number, dst: Ptr, ddt: number, dPitch: number, rows: number, cols: number): void;
  rope(x: Ptr, xdt: number, out: Ptr, odt: number, rows: number, width: number, positions: Int32Array,
    invFreq: Float32Array, headDim: number, inverse: boolean): void;
  colReduce(a: Ptr, adt: number, b: Ptr, bdt: number, rowScale: Ptr, rows: number, C: number, out: Ptr): void;
  sumSquares(x: Ptr, dt: number, n: number): number;
  nonFinite(x: Ptr, dt: number, n: number): boolean;
  smoothL1(pred: Ptr, pdt: number, target: Ptr, tdt: number, n: number, dpred: Ptr, ddt: number): number;
  rmsnorm(x: Ptr, xdt: number, w: Ptr, wdt: number, y: Ptr, ydt: number, rstd: Ptr, rows: number, C: number,
    eps: number): void;
  rmsnormBwd(dy: Ptr, dydt: number, x: Ptr, xdt: number, w: Ptr, wdt: number, rstd: Ptr, dx: Ptr, dxdt: number,
    dw: Ptr, rows: number, C: number): void;
  crossEntropy(logits: Ptr, ldt: number, rows: number, V: number, labels: Int32Array, weights: Float32Array | null,
    loss: Ptr, lse: Ptr, dlogits: Ptr, ddt: number): void;
  argmax(x: Ptr, dt: number, rows: number, V: number): Int32Array;
  givens(x: Ptr, xdt: number, y: Ptr, ydt: number, rows: number, I: number, pairs: Ptr, theta: Ptr, K: number,
    gs: number, inverse: boolean): void;
  givensBwd(dy: Ptr, dydt: number, y: Ptr, ydt: number, dx: Ptr, dxdt: number, dtheta: Ptr, rows: number, I: number,
    pairs: Ptr, theta: Ptr, K: number, gs: number, inverse: boolean): void;
  fqMinMax(r: Ptr, rdt: number, rq: Ptr, rqdt: number, scale: Ptr, zpf: Ptr, nGroups: number, gs: number,
    qmax: number): void;
  fqMinMaxBwd(drq: Ptr, ddt: number, r: Ptr, rdt: number, scale: Ptr, zpf: Ptr, dr: Ptr, drdt: number,
    nGroups: number, gs: number, qmax: number): void;
  fqParams(r: Ptr, rdt: number, scale: Ptr, zpf: Ptr, rq: Ptr, rqdt: number, nGroups: number, gs: number,
    qmax: number): void;
  fqParamsBwd(drq: Ptr, ddt: number, r: Ptr, rdt: number, scale: Ptr, zpf: Ptr, dr: Ptr, drdt: number, dscale: Ptr,
    nGroups: number, gs: number, qmax: number): void;
  /** The fused transform (k_paro_fused.cu): stage 2 with pScale/pZpf, stage 1 (both 0) writing gScale/gZpf. */
  paroTransform(W: Ptr, wdt: number, alpha: Ptr, pairs: Ptr, theta: Ptr, pScale: Ptr, pZpf: Ptr, out: Ptr, odt: number,
    gScale: Ptr, gZpf: Ptr, O: number, I: number, K: number, gs: number, qmax: number, resid?: Ptr, rdt?: number,
    extremes?: Ptr): void;
  /** The Gram backward's scale gradient per flat group (k_paro_resid.cu). */
  paroScaleGrad(dWhat: Ptr, ddt: number, E: Ptr, edt: number, scale: Ptr, S: Ptr, nGroups: number, gs: number): void;
  /** The min/max path as a per-group Gram matrix f32 [gs, I] (k_paro_resid.cu). */
  paroMinMaxGram(S: Ptr, extremes: Ptr, W: Ptr, wdt: number, alpha: Ptr, out: Ptr, O: number, I: number, gs: number,
    qmax: number): void;
  /** Per-group Gram matrices f32 [gs, I] of a, b [O, I] (k_gram.cu), scaled by α[k]/α[i] unless alpha is 0. */
  groupGram(a: Ptr, adt: number, b: Ptr, bdt: number, alpha: Ptr, out: Ptr, O: number, I: number, gs: number): void;
  /** Its backward: stage 1 writes dtheta/dalpha, stage 2 dW/dscale (the other pair 0). */
  paroTransformBwd(dWhat: Ptr, ddt: number, W: Ptr, wdt: number, alpha: Ptr, pairs: Ptr, theta: Ptr, scale: Ptr, zpf: Ptr,
    stage: number, dtheta: Ptr, dalpha: Ptr, dW: Ptr, dwdt: number, dscale: Ptr, O: number, I: number, K: number, gs: number,
    qmax: number): void;
  /** nibbleOrder: nibble k's row offset in bits 4k..4k+2 (AutoAWQ: 0x75316420). */
  quantizePacked(r: Ptr, rdt: number, scale: Ptr, zpf: Ptr, words: Ptr, O: number, I: number, gs: number, qmax: number,
    nibbleOrder: number): void;
  dequantizePacked(words: Ptr, zeros: Ptr, scale: Ptr, out: Ptr, O: number, I: number, gs: number, nibbleOrder: number): void;
  attention(q: Ptr, qdt: number, k: Ptr, kdt: number, v: Ptr, vdt: number, out: Ptr, odt: number, lse: Ptr,
    dims: NativeAttnDims, mask: NativeAttnMask, anchors: Int32Array | null, keep: Int32Array | null,
    forceScalar: boolean): void;
  attentionBwd(dout: Ptr, dodt: number, q: Ptr, qdt: number, k: Ptr, kdt: number, v: Ptr, vdt: number, out: Ptr,
    odt: number, lse: Ptr, dq: Ptr, dqdt: number, dk: Ptr, dkdt: number, dv: Ptr, dvdt: number, dims: NativeAttnDims,
    mask: NativeAttnMask, anchors: Int32Array | null, keep: Int32Array | null, forceScalar: boolean): void;
  gemm(a: Ptr, adt: number, b: Ptr, bdt: number, c: Ptr, cdt: number, M: number, N: number, K: number,
    transA: boolean, transB: boolean, alpha: number, beta: number): void;
  benchCublas(M: number, N: number, K: number, iters: number): number;
  // NCCL (native/src/collective.cu; src/engine/cuda/collective.ts): comm is a handle number, op 0 = sum, 1 = mean.
  ncclLoad(extraPaths: string[]): { ok: boolean; path?: string; version?: number; versionString?: string; error?: string };
  ncclUniqueId(): Uint8Array;
  ncclInit(id: Uint8Array, worldSize: number, rank: number): number;
  ncclAllReduce(comm: number, p: Ptr, dt: number, count: number, op: 0 | 1): void;
  ncclBroadcast(comm: number, p: Ptr, bytes: number, root: number): void;
  /** In place, reduced in f64 on the device; synchronises. */
  ncclAllReduceHost(comm: number, values: Float64Array, op: 0 | 1): void;
  /** An all-reduce of one f32, then a wait for the stream. */
  ncclBarrier(comm: number): void;
  ncclDestroy(comm: number): void;
}

const ADDON_REL = path.join('native', 'build', 'paro_cuda.node');
/** The addon shipped in the package (native/install-policy.mjs prebuiltDir), used when there is no local build. */
const PREBUILT_REL = path.join('prebuilds', `${process.platform}-${process.arch}`, 'paro_cuda.node');
/** package.json "name" of this package: the folder holding it is the only place a build is looked for. */
export const PACKAGE_NAME = 'paro-dflash';

/**
 * The package root: the nearest folder at or above start holding a package.json, when that file names this package;
 * null otherwise. Only the nearest package.json counts, so a folder above the package is never searched.
 */
export function packageRoot(start: string): string | null {
  let dir = path.resolve(start);
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        const name = (JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: unknown }).name;
        return name === PACKAGE_NAME ? dir : null;
      } catch {
        return null;
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/**
 * Where the addon may be: $PARO_CUDA_ADDON when set (an explicit choice, nothing else is tried), else only the
 * package's own native/build/, then its prebuilds/<platform>-<arch>/. Folders above the package are never searched:
 * a library planted there would run.
 */
export function addonCandidates(env: NodeJS.ProcessEnv = process.env, moduleDir = path.dirname(fileURLToPath(import.meta.url))): string[] {
  if (env.PARO_CUDA_ADDON) return [path.resolve(env.PARO_CUDA_ADDON)];
  const root = packageRoot(moduleDir);
  return root ? [path.join(root, ADDON_REL), path.join(root, PREBUILT_REL)] : [];
}

let cached: { addon?: NativeAddon; error?: string; path?: string } | null = null;

/** The addon, or the reason it cannot be loaded (not built, or it failed to load). Loaded once per process. */
export function loadAddon(): { addon?: NativeAddon; error?: string; path?: string } {
  if (cached) return cached;
  const file = addonCandidates().find((p) => fs.existsSync(p));
  if (!file && process.env.PARO_CUDA_ADDON) {
    cached = { error: `PARO_CUDA_ADDON names ${path.resolve(process.env.PARO_CUDA_ADDON)}, which does not exist` };
    return cached;
  }
  if (!file) {
    cached = { error: 'the CUDA backend is not built and the package has no prebuilt addon for this machine (build it with `PARO_CUDA=1 npm rebuild paro-dflash`, or `npm run build:cuda` in a checkout; both need nvcc: docs/install.md)' };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    cached = { addon: require(file) as NativeAddon, path: file };
  } catch (e) {
    cached = { error: `the CUDA addon ${file} failed to load: ${(e as Error).message.split('\n')[0]}`, path: file };
  }
  return cached;
}
