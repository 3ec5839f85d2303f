// Device state: one device, one non-blocking stream, a caching allocator (size-class free lists; cudaMalloc only
// on a miss), pinned staging slots for small uploads, and error reporting that names the kernel.
#include "runtime.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "common.cuh"
#include "cublas_dyn.h"

namespace paro {
namespace {

constexpr int kSlots = 16;                  // pinned staging slots for small uploads
constexpr size_t kSlotBytes = 256 << 10;    // 256 KiB each

struct State {
  bool ready = false;
  bool debug = false;
  int device = -1;
  cudaStream_t stream = nullptr;
  DeviceInfo info;
  const char* lastKernel = "(none)";
  // caching allocator
  std::unordered_map<size_t, std::vector<void*>> freeBlocks;  // size class -> cached blocks
  std::unordered_map<void*, size_t> liveBlocks;               // pointer -> size class
  size_t liveBytes = 0, cachedBytes = 0, peakBytes = 0;
  uint64_t mallocs = 0, hits = 0;
  // pinned staging
  char* pinned = nullptr;
  cudaEvent_t slotDone[kSlots] = {};
  int nextSlot = 0;
};

State S;

std::string mib(size_t b) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  return buf;
}

/** Size class: 8 classes per power of two (at most 12.5 % slack), at least 256 bytes. */
size_t sizeClass(size_t n) {
  if (n <= 256) return 256;
  int e = 63 - __builtin_clzll((unsigned long long)(n - 1));
  size_t step = (size_t)1 << (e - 3);
  return (n + step - 1) & ~(step - 1);
}

void requireReady() {
  if (!S.ready) throw CudaError("CUDA backend used before a device was opened");
}

void releaseCached() {
  if (S.cachedBytes == 0) return;
  cudaStreamSynchronize(S.stream);
  for (auto& kv : S.freeBlocks)
    for (void* p : kv.second) cudaFree(p);
  S.freeBlocks.clear();
  S.cachedBytes = 0;
}

}  // namespace

void checkCuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so later calls can proceed
  throw CudaError(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

cudaStream_t stream() { return S.stream; }
int smCount() { return S.info.smCount > 0 ? S.info.smCount : 1; }
bool deviceReady() { return S.ready; }
const char* lastKernel() { return S.lastKernel; }

void checkLaunch(const char* kernel) {
  S.lastKernel = kernel;
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw CudaError(std::string("kernel ") + kernel + " failed to launch: " + cudaGetErrorName(e) + " (" +
                    cudaGetErrorString(e) + ")");
  if (S.debug) {
    e = cudaStreamSynchronize(S.stream);
    if (e != cudaSuccess)
      throw CudaError(std::string("kernel ") + kernel + " failed: " + cudaGetErrorName(e) + " (" +
                      cudaGetErrorString(e) + ")");
  }
}

void synchronize() {
  requireReady();
  cudaError_t e = cudaStreamSynchronize(S.stream);
  if (e != cudaSuccess)
    throw CudaError(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                    ") found at synchronisation; last kernel launched: " + S.lastKernel +
                    " (set PARO_CUDA_DEBUG=1 to check every launch)");
}

Probe probe() {
  Probe p;
  cudaRuntimeGetVersion(&p.runtimeVersion);
  cudaDriverGetVersion(&p.driverVersion);
  cudaError_t e = cudaGetDeviceCount(&p.deviceCount);
  if (e != cudaSuccess) {
    p.error = (int)e;
    p.errorName = cudaGetErrorName(e);
    p.errorString = cudaGetErrorString(e);
    p.deviceCount = 0;
    cudaGetLastError();
    return p;
  }
  for (int i = 0; i < p.deviceCount; i++) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    DeviceInfo d;
    d.name = prop.name;
    d.totalMemoryBytes = prop.totalGlobalMem;
    d.ccMajor = prop.major;
    d.ccMinor = prop.minor;
    d.smCount = prop.multiProcessorCount;
    p.devices.push_back(d);
  }
  return p;
}

DeviceInfo initDevice(int device, bool debug) {
  if (S.ready) {
    if (device != S.device)
      throw CudaError("the CUDA backend is already open on device " + std::to_string(S.device) +
                      "; one device per process");
    S.debug = S.debug || debug;
    return S.info;
  }
  int count = 0;
  checkCuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device < 0 || device >= count)
    throw CudaError("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
                    " found)");
  checkCuda(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp prop;
  checkCuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  if (prop.major < 8)
    throw CudaError(std::string("GPU ") + prop.name + " has compute capability " + std::to_string(prop.major) + "." +
                    std::to_string(prop.minor) + "; the CUDA backend needs 8.0 or newer (bf16 tensor cores)");
  checkCuda(cudaStreamCreateWithFlags(&S.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  checkCuda(cudaMallocHost(&S.pinned, kSlots * kSlotBytes), "cudaMallocHost");
  for (int i = 0; i < kSlots; i++) checkCuda(cudaEventCreateWithFlags(&S.slotDone[i], cudaEventDisableTiming), "cudaEventCreate");
  S.device = device;
  S.debug = debug;
  S.info.name = prop.name;
  S.info.totalMemoryBytes = prop.totalGlobalMem;
  S.info.ccMajor = prop.major;
  S.info.ccMinor = prop.minor;
  S.info.smCount = prop.multiProcessorCount;
  S.ready = true;
  try {
    cublasInitHandle();
  } catch (...) {
    S.ready = false;
    throw;
  }
  return S.info;
}

void* devAlloc(size_t bytes) {
  requireReady();
  size_t cls = sizeClass(bytes);
  auto it = S.freeBlocks.find(cls);
  if (it != S.freeBlocks.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    S.cachedBytes -= cls;
    S.liveBlocks[p] = cls;
    S.liveBytes += cls;
    S.peakBytes = std::max(S.peakBytes, S.liveBytes);
    S.hits++;
    return p;
  }
  // A miss: make room first when the driver reports too little free memory for this request.
  size_t freeB = 0, totalB = 0;
  if (cudaMemGetInfo(&freeB, &totalB) == cudaSuccess && freeB < cls + (64u << 20)) releaseCached();
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, cls);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    releaseCached();
    e = cudaMalloc(&p, cls);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    cudaMemGetInfo(&freeB, &totalB);
    throw CudaError("CUDA out of memory: a request of " + mib(bytes) + " failed (" + cudaGetErrorName(e) +
                    "); the GPU has " + mib(freeB) + " free of " + mib(totalB) + ", the backend holds " +
                    mib(S.liveBytes) + " in live tensors");
  }
  S.mallocs++;
  S.liveBlocks[p] = cls;
  S.liveBytes += cls;
  S.peakBytes = std::max(S.peakBytes, S.liveBytes);
  return p;
}

void devFree(void* p) {
  if (!p || !S.ready) return;
  auto it = S.liveBlocks.find(p);
  if (it == S.liveBlocks.end()) throw CudaError("free of a pointer the CUDA backend did not allocate (double free?)");
  size_t cls = it->second;
  S.liveBlocks.erase(it);
  S.liveBytes -= cls;
  // Single stream: work queued later that reuses this block runs after the work that used it.
  S.freeBlocks[cls].push_back(p);
  S.cachedBytes += cls;
}

MemStats memStats() {
  size_t freeB = 0, totalB = 0;
  if (S.ready) cudaMemGetInfo(&freeB, &totalB);
  return {S.liveBytes, S.cachedBytes, S.peakBytes, S.mallocs, S.hits, freeB, totalB};
}

void* hostAllocPinned(size_t bytes) {
  requireReady();
  void* p = nullptr;
  cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw CudaError("cannot allocate " + mib(bytes) + " of pinned host memory: " + cudaGetErrorString(e));
  }
  return p;
}

void hostFreePinned(void* p) {
  if (p) cudaFreeHost(p);
}

void emptyCache() {
  if (S.ready) releaseCached();
}

void upload(void* dst, const void* src, size_t bytes) {
  requireReady();
  if (bytes == 0) return;
  if (bytes <= kSlotBytes) {
    // Small copies (positions, labels, ids) stay asynchronous through a pinned slot.
    int slot = S.nextSlot;
    S.nextSlot = (S.nextSlot + 1) % kSlots;
    checkCuda(cudaEventSynchronize(S.slotDone[slot]), "staging slot wait");
    char* stage = S.pinned + (size_t)slot * kSlotBytes;
    memcpy(stage, src, bytes);
    checkCuda(cudaMemcpyAsync(dst, stage, bytes, cudaMemcpyHostToDevice, S.stream), "cudaMemcpyAsync H2D");
    checkCuda(cudaEventRecord(S.slotDone[slot], S.stream), "cudaEventRecord");
    return;
  }
  checkCuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, S.stream), "cudaMemcpyAsync H2D");
  // The caller's buffer may be reused on return.
  synchronize();
}

void download(void* dstHost, const void* srcDev, size_t bytes) {
  requireReady();
  if (bytes == 0) return synchronize();
  checkCuda(cudaMemcpyAsync(dstHost, srcDev, bytes, cudaMemcpyDeviceToHost, S.stream), "cudaMemcpyAsync D2H");
  synchronize();
}

void copyD2D(void* dst, const void* src, size_t bytes) {
  requireReady();
  if (bytes == 0 || dst == src) return;
  checkCuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, S.stream), "cudaMemcpyAsync D2D");
}

void copy2D(void* dst, size_t dPitch, const void* src, size_t sPitch, size_t widthBytes, size_t rows) {
  requireReady();
  if (widthBytes == 0 || rows == 0) return;
  checkCuda(cudaMemcpy2DAsync(dst, dPitch, src, sPitch, widthBytes, rows, cudaMemcpyDeviceToDevice, S.stream),
            "cudaMemcpy2DAsync");
}

void memsetD(void* dst, int byte, size_t bytes) {
  requireReady();
  if (bytes == 0) return;
  checkCuda(cudaMemsetAsync(dst, byte, bytes, S.stream), "cudaMemsetAsync");
}

}  // namespace paro
