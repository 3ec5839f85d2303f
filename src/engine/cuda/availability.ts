// Whether the CUDA backend can run here, and why not: for `paro doctor` and `--device auto` (which falls back to
// the cpu only when code is 'no-gpu'), and the opening of the backend with a clear UserError otherwise.
import { UserError } from '../../errors.js';
import { loadAddon, type NativeAddon } from './addon.js';
import { CudaBackend } from './backend.js';

export type CudaUnavailableCode =
  | 'not-built' // no addon: nvcc was absent at install, or the build failed
  | 'load-failed' // the addon exists but Node could not load it
  | 'no-gpu' // no NVIDIA driver or no device
  | 'driver-too-old' // a driver older than the CUDA runtime the addon was built with
  | 'unsupported-gpu' // only GPUs below compute capability 8.0
  | 'cublas-missing' // no libcublas to dlopen
  | 'error'; // any other CUDA error

export interface CudaDeviceSummary {
  name: string;
  totalMemoryBytes: number;
  /** "9.0" */
  computeCapability: string;
}

export interface CudaAvailability {
  available: boolean;
  reason?: string;
  code?: CudaUnavailableCode;
  devices?: CudaDeviceSummary[];
  /** Where libcublas was found (available only). */
  cublasPath?: string;
  /** The addon file that was loaded (or failed to load). */
  addonPath?: string;
}

const CUDA_ERROR_INSUFFICIENT_DRIVER = 35;
const CUDA_ERROR_NO_DEVICE = 100;

function cudaVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

function check(addon: NativeAddon): CudaAvailability {
  const p = addon.probe();
  if (p.error === CUDA_ERROR_NO_DEVICE || (p.error === 0 && p.deviceCount === 0)) {
    return { available: false, code: 'no-gpu', reason: 'no CUDA GPU found' };
  }
  if (p.error === CUDA_ERROR_INSUFFICIENT_DRIVER) {
    if (!p.libcudaFound || p.driverVersion === 0) {
      return { available: false, code: 'no-gpu', reason: 'no NVIDIA driver found (no GPU)' };
    }
    return {
      available: false,
      code: 'driver-too-old',
      reason: `the NVIDIA driver supports CUDA ${cudaVersion(p.driverVersion)}, but the CUDA backend was built with ` +
        `CUDA ${cudaVersion(p.runtimeVersion)}: update the driver or rebuild the addon with an older CUDA toolkit`,
    };
  }
  if (p.error !== 0) {
    return { available: false, code: 'error', reason: `CUDA initialisation failed: ${p.errorName} (${p.errorString})` };
  }
  const devices = p.devices.map((d) => ({
    name: d.name, totalMemoryBytes: d.totalMemoryBytes, computeCapability: `${d.ccMajor}.${d.ccMinor}`,
  }));
  if (!p.devices.some((d) => d.ccMajor >= 8)) {
    return {
      available: false, code: 'unsupported-gpu', devices,
      reason: `no GPU with compute capability 8.0 or newer (found ${devices.map((d) => `${d.name} ${d.computeCapability}`).join(', ')})`,
    };
  }
  const cublas = addon.cublasProbe();
  if (!cublas.ok) return { available: false, code: 'cublas-missing', devices, reason: cublas.error ?? 'cuBLAS not found' };
  return { available: true, devices, cublasPath: cublas.path };
}

/** Probe the addon, the driver, the GPUs and cuBLAS without opening a device. Never throws. */
export function cudaAvailability(): CudaAvailability {
  const loaded = loadAddon();
  if (!loaded.addon) {
    return { available: false, code: loaded.path ? 'load-failed' : 'not-built', reason: loaded.error, addonPath: loaded.path };
  }
  try {
    return { ...check(loaded.addon), addonPath: loaded.path };
  } catch (e) {
    return { available: false, code: 'error', reason: (e as Error).message, addonPath: loaded.path };
  }
}

let opened: CudaBackend | null = null;

/**
 * Open GPU deviceIndex (one per process) and return the CUDA backend. Throws a UserError saying why when the addon is
 * not built, no GPU or driver is present, the driver is too old, or cuBLAS is missing. PARO_CUDA_DEBUG=1 makes every
 * kernel launch synchronise, so a failing kernel is named.
 */
export function loadCudaBackend(deviceIndex = 0): CudaBackend {
  if (opened) {
    if (opened.deviceIndex !== deviceIndex) {
      throw new UserError(`the CUDA backend is already open on device ${opened.deviceIndex}; one device per process`);
    }
    return opened;
  }
  const avail = cudaAvailability();
  if (!avail.available) throw new UserError(`CUDA backend unavailable: ${avail.reason}`);
  const count = avail.devices?.length ?? 0;
  if (!Number.isInteger(deviceIndex) || deviceIndex < 0 || deviceIndex >= count) {
    throw new UserError(`CUDA device ${deviceIndex} does not exist (${count} GPU${count === 1 ? '' : 's'} found)`);
  }
  const addon = loadAddon().addon as NativeAddon;
  try {
    const info = addon.init(deviceIndex, process.env.PARO_CUDA_DEBUG === '1');
    opened = new CudaBackend(addon, deviceIndex, info);
    return opened;
  } catch (e) {
    throw new UserError(`CUDA backend unavailable: ${(e as Error).message}`, { cause: e });
  }
}
