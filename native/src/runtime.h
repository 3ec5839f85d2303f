// Device state of the addon: one device and one stream per process, the caching allocator, host<->device copies,
// and the probe used before any device is opened.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace paro {

struct DeviceInfo {
  std::string name;
  size_t totalMemoryBytes = 0;
  int ccMajor = 0, ccMinor = 0;
  int smCount = 0;
};

/** Result of probing the driver without opening a device. */
struct Probe {
  int deviceCount = 0;
  int error = 0;               // cudaError_t of cudaGetDeviceCount (0 = success)
  std::string errorName, errorString;
  int driverVersion = 0;       // 0 when no driver is installed
  int runtimeVersion = 0;      // the cudart this addon was built with
  std::vector<DeviceInfo> devices;
};

Probe probe();

/** Open the device, create the stream and the cuBLAS handle. Idempotent for the same index. */
DeviceInfo initDevice(int device, bool debug);
bool deviceReady();

struct MemStats {
  size_t liveBytes, cachedBytes, peakBytes;
  uint64_t mallocs, hits;
  size_t freeBytes, totalBytes;  // device memory as the driver reports it (cudaMemGetInfo)
};
/** Page-locked host memory (cudaMallocHost): uploads from it run at full PCIe/NVLink speed. */
void* hostAllocPinned(size_t bytes);
void hostFreePinned(void* p);
MemStats memStats();
/** Return every cached (unused) block to the driver. */
void emptyCache();

void download(void* dstHost, const void* srcDev, size_t bytes);  // synchronises
void copyD2D(void* dst, const void* src, size_t bytes);
void copy2D(void* dst, size_t dPitch, const void* src, size_t sPitch, size_t widthBytes, size_t rows);
void memsetD(void* dst, int byte, size_t bytes);
/** Wait for the stream; throws CudaError naming the last kernel when queued work failed. */
void synchronize();
const char* lastKernel();

}  // namespace paro
