// NCCL reached through dlopen, like cuBLAS (gemm.cu): the addon builds where no NCCL header or library exists and
// links nothing of NCCL. The few types and entry points used are declared here from the public NCCL API
// documentation (docs.nvidia.com/deeplearning/nccl, "Types" and "Collective Communication Functions"); the enum
// values below are the documented ones. Enums travel as int (their underlying type in the C ABI).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <vector>

namespace paro {
namespace nccl {

/** ncclUniqueId: an opaque 128-byte record made by rank 0 and handed to every rank (passed by value). */
constexpr size_t kUniqueIdBytes = 128;
struct UniqueId {
  char internal[kUniqueIdBytes];
};

/** ncclComm_t: a pointer to NCCL's opaque communicator. */
struct OpaqueComm;
typedef OpaqueComm* Comm;

/** ncclResult_t */
typedef int Result;
enum : int {
  kSuccess = 0,
  kUnhandledCudaError = 1,
  kSystemError = 2,
  kInternalError = 3,
  kInvalidArgument = 4,
  kInvalidUsage = 5,
  kRemoteError = 6,
  kInProgress = 7,
};

/** ncclDataType_t */
enum : int {
  kInt8 = 0,
  kUint8 = 1,
  kInt32 = 2,
  kUint32 = 3,
  kInt64 = 4,
  kUint64 = 5,
  kFloat16 = 6,
  kFloat32 = 7,
  kFloat64 = 8,
  kBfloat16 = 9,
};

/** ncclRedOp_t (ncclAvg exists from NCCL 2.10) */
enum : int { kSum = 0, kProd = 1, kMax = 2, kMin = 3, kAvg = 4 };

/** NCCL_VERSION_CODE of 2.10.0 (codes from 2.9 on are major*10000 + minor*100 + patch): bf16 and ncclAvg. */
constexpr int kVersionBf16 = 21000;

typedef Result (*GetVersionFn)(int* version);
typedef Result (*GetUniqueIdFn)(UniqueId* uniqueId);
typedef Result (*CommInitRankFn)(Comm* comm, int nranks, UniqueId commId, int rank);
typedef Result (*AllReduceFn)(const void* sendbuff, void* recvbuff, size_t count, int datatype, int op, Comm comm,
                              cudaStream_t stream);
typedef Result (*BroadcastFn)(const void* sendbuff, void* recvbuff, size_t count, int datatype, int root, Comm comm,
                              cudaStream_t stream);
typedef Result (*CommDestroyFn)(Comm comm);
typedef Result (*CommAbortFn)(Comm comm);
typedef Result (*CommGetAsyncErrorFn)(Comm comm, Result* asyncError);
typedef const char* (*GetErrorStringFn)(Result result);
typedef const char* (*GetLastErrorFn)(Comm comm);  // NCCL 2.13 and newer; may be absent

/** The entry points of the loaded library; the optional ones are null when the library lacks them. */
struct Api {
  GetVersionFn getVersion = nullptr;
  GetUniqueIdFn getUniqueId = nullptr;
  CommInitRankFn commInitRank = nullptr;
  AllReduceFn allReduce = nullptr;
  BroadcastFn broadcast = nullptr;
  CommDestroyFn commDestroy = nullptr;
  GetErrorStringFn getErrorString = nullptr;
  CommAbortFn commAbort = nullptr;                  // optional
  CommGetAsyncErrorFn commGetAsyncError = nullptr;  // optional
  GetLastErrorFn getLastError = nullptr;            // optional
};

/**
 * dlopen libnccl.so.2, once per process. $PARO_NCCL_LIB (a file, or a folder holding libnccl.so.2) is an explicit
 * choice: nothing else is tried. Otherwise: the plain name (system library path, LD_LIBRARY_PATH), then extraPaths
 * (files the caller found, e.g. in python3's site-packages), then nvidia/nccl/lib of Python environments in the usual
 * places ($VIRTUAL_ENV, $CONDA_PREFIX, /opt/<name>/.venv, /usr/local/lib/python3.x), then CUDA and system folders.
 * Sets NCCL_NVLS_ENABLE=0 unless the environment already sets it (NVLink multicast stays off). On failure returns
 * false with a message naming what was tried and where NCCL comes from.
 */
bool load(const std::vector<std::string>& extraPaths, std::string* loadedFrom, std::string* error);
/** The entry points; throws CudaError with load()'s message when the library is not loaded and cannot be. */
const Api& api();
/** NCCL_VERSION_CODE of the loaded library (0 when not loaded). */
int versionCode();
/** "2.27.3" */
std::string versionString(int code);

}  // namespace nccl
}  // namespace paro
