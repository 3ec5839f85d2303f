// GEMM through cuBLAS opened with dlopen. The entry points are declared here from the documented cuBLAS API
// (the enum values are those of cublas_api.h and library_types.h), so no cuBLAS header or library is needed to build.
#include <dlfcn.h>
#include <glob.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "common.cuh"
#include "cublas_dyn.h"
#include "ops.h"

namespace paro {
namespace {

typedef void* CublasHandle;
typedef int CublasStatus;
enum { kOpN = 0, kOpT = 1 };
enum { kR32F = 0, kR16F = 2, kR16BF = 14 };   // cudaDataType
enum { kCompute32F = 68 };                    // cublasComputeType_t: fp32 accumulation, no TF32
enum { kDefaultMath = 0 };                    // cublasMath_t: TF32 only if asked for, which we never do
enum { kGemmDefault = -1 };                   // cublasGemmAlgo_t

typedef CublasStatus (*CreateFn)(CublasHandle*);
typedef CublasStatus (*SetStreamFn)(CublasHandle, cudaStream_t);
typedef CublasStatus (*SetMathModeFn)(CublasHandle, int);
typedef CublasStatus (*GetVersionFn)(CublasHandle, int*);
typedef CublasStatus (*GemmExFn)(CublasHandle, int, int, int, int, int, const void*, const void*, int, int,
                                 const void*, int, int, const void*, void*, int, int, int, int);

struct Cublas {
  void* lib = nullptr;
  std::string path;
  CreateFn create = nullptr;
  SetStreamFn setStream = nullptr;
  SetMathModeFn setMathMode = nullptr;
  GetVersionFn getVersion = nullptr;
  GemmExFn gemmEx = nullptr;
  CublasHandle handle = nullptr;
  int version = 0;
};

Cublas C;

const char* statusName(CublasStatus s) {
  switch (s) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

void checkCublas(CublasStatus s, const char* what) {
  if (s != 0) throw CudaError(std::string("cuBLAS error in ") + what + ": " + statusName(s));
}

/** A literal path as a glob(3) pattern: its wildcard characters escaped. */
std::string globEscape(const char* path) {
  std::string out;
  for (const char* c = path; *c; c++) {
    if (*c == '*' || *c == '?' || *c == '[' || *c == '\\') out += '\\';
    out += *c;
  }
  return out;
}

std::vector<std::string> candidates() {
  std::vector<std::string> c;
  if (const char* e = getenv("PARO_CUBLAS")) c.push_back(e);
  for (const char* n : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) c.push_back(n);
  std::vector<std::string> dirs;
  if (const char* h = getenv("CUDA_HOME")) dirs.push_back(std::string(h) + "/lib64");
  if (const char* h = getenv("CUDA_PATH")) dirs.push_back(std::string(h) + "/lib64");
  dirs.push_back("/usr/local/cuda/lib64");
  dirs.push_back("/usr/local/cuda/targets/x86_64-linux/lib");
  dirs.push_back("/usr/lib/x86_64-linux-gnu");
  // cuBLAS shipped inside Python wheels (nvidia-cublas), e.g. beside a PyTorch install: the active virtualenv or
  // conda environment first (conda's own cuBLAS package puts it in <prefix>/lib), then the usual system places.
  std::vector<std::string> patterns;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"}) {
    const char* prefix = getenv(var);
    if (!prefix || !*prefix) continue;
    std::string p = globEscape(prefix);
    patterns.push_back(p + "/lib/python3*/site-packages/nvidia/cu13/lib");
    patterns.push_back(p + "/lib/python3*/site-packages/nvidia/cublas/lib");
    if (std::string(var) == "CONDA_PREFIX") patterns.push_back(p + "/lib");
  }
  for (const char* pat : {"/opt/*/.venv/lib/python3*/site-packages/nvidia/cu13/lib",
                          "/opt/*/.venv/lib/python3*/site-packages/nvidia/cublas/lib",
                          "/usr/local/lib/python3*/dist-packages/nvidia/cu13/lib",
                          "/usr/local/lib/python3*/dist-packages/nvidia/cublas/lib",
                          "/usr/local/lib/python3*/site-packages/nvidia/cublas/lib"})
    patterns.push_back(pat);
  for (const std::string& pat : patterns) {
    glob_t g;
    if (glob(pat.c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; i++) dirs.push_back(g.gl_pathv[i]);
    globfree(&g);
  }
  for (const std::string& d : dirs)
    for (const char* n : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) c.push_back(d + "/" + n);
  return c;
}

int cudaType(int dt) {
  if (dt == DT_BF16) return kR16BF;
  if (dt == DT_F16) return kR16F;
  if (dt == DT_F32) return kR32F;
  throw ArgError("matmul: i32 tensors cannot be multiplied");
}

}  // namespace

bool cublasLoad(std::string* loadedFrom, std::string* error) {
  if (C.gemmEx) {
    if (loadedFrom) *loadedFrom = C.path;
    return true;
  }
  std::string tried;
  for (const std::string& path : candidates()) {
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      if (tried.size() < 400) tried += (tried.empty() ? "" : ", ") + path;
      continue;
    }
    C.create = (CreateFn)dlsym(lib, "cublasCreate_v2");
    C.setStream = (SetStreamFn)dlsym(lib, "cublasSetStream_v2");
    C.setMathMode = (SetMathModeFn)dlsym(lib, "cublasSetMathMode");
    C.getVersion = (GetVersionFn)dlsym(lib, "cublasGetVersion_v2");
    C.gemmEx = (GemmExFn)dlsym(lib, "cublasGemmEx");
    if (!C.create || !C.setStream || !C.setMathMode || !C.getVersion || !C.gemmEx) {
      C = Cublas();
      dlclose(lib);
      tried += (tried.empty() ? "" : ", ") + path + " (missing symbols)";
      continue;
    }
    C.lib = lib;
    C.path = path;
    if (loadedFrom) *loadedFrom = path;
    return true;
  }
  if (error) *error = "cuBLAS not found (tried " + tried + "); install cuBLAS or set PARO_CUBLAS to libcublas.so";
  return false;
}

void cublasInitHandle() {
  if (C.handle) return;
  std::string err;
  if (!cublasLoad(nullptr, &err)) throw CudaError(err);
  checkCublas(C.create(&C.handle), "cublasCreate");
  checkCublas(C.setStream(C.handle, stream()), "cublasSetStream");
  checkCublas(C.setMathMode(C.handle, kDefaultMath), "cublasSetMathMode");
  checkCublas(C.getVersion(C.handle, &C.version), "cublasGetVersion");
}

int cublasVersionNumber() { return C.version; }

void gemm(const void* a, int adt, const void* b, int bdt, void* c, int cdt, int M, int N, int K, bool transA,
          bool transB, float alpha, float beta) {
  if (!C.handle) throw CudaError("cuBLAS is not initialised");
  if (adt != bdt) throw ArgError("matmul: operands must share a dtype (the binding casts them)");
  if (M == 0 || N == 0) return;
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: pass B first.
  int opB = transB ? kOpT : kOpN;
  int opA = transA ? kOpT : kOpN;
  int ldb = transB ? K : N;
  int lda = transA ? M : K;
  checkCublas(C.gemmEx(C.handle, opB, opA, N, M, K, &alpha, b, cudaType(bdt), ldb, a, cudaType(adt), lda, &beta, c,
                       cudaType(cdt), N, kCompute32F, kGemmDefault),
              "cublasGemmEx");
  checkLaunch("cublasGemmEx");
}

double benchCublasBf16(int M, int N, int K, int iters) {
  if (!C.handle) throw CudaError("cuBLAS is not initialised");
  Scratch A((size_t)M * K * 2), B((size_t)K * N * 2), Cm((size_t)M * N * 2);
  randomK(A.p, DT_BF16, (size_t)M * K, 1);
  randomK(B.p, DT_BF16, (size_t)K * N, 2);
  cudaEvent_t e0, e1;
  checkCuda(cudaEventCreate(&e0), "cudaEventCreate");
  checkCuda(cudaEventCreate(&e1), "cudaEventCreate");
  float one = 1.f, zero = 0.f;
  auto call = [&]() {
    checkCublas(C.gemmEx(C.handle, kOpT, kOpN, N, M, K, &one, B.p, kR16BF, K, A.p, kR16BF, K, &zero, Cm.p, kR16BF, N,
                         kCompute32F, kGemmDefault),
                "cublasGemmEx");
  };
  for (int w = 0; w < 3; w++) call();  // the first calls pick kernels and warm the clocks
  // Back-to-back batches between two events (as Backend.matmul is timed), median of five batches.
  std::vector<float> ms;
  for (int rep = 0; rep < 5; rep++) {
    checkCuda(cudaEventRecord(e0, stream()), "cudaEventRecord");
    for (int it = 0; it < iters; it++) call();
    checkCuda(cudaEventRecord(e1, stream()), "cudaEventRecord");
    checkCuda(cudaEventSynchronize(e1), "cudaEventSynchronize");
    float t = 0;
    checkCuda(cudaEventElapsedTime(&t, e0, e1), "cudaEventElapsedTime");
    ms.push_back(t / iters);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace paro
