// The CUDA backend's public surface.
export { CudaBackend } from './backend.js';
export { cudaAvailability, loadCudaBackend } from './availability.js';
export type { CudaAvailability, CudaDeviceSummary, CudaUnavailableCode } from './availability.js';
