// Collectives of data-parallel runs through NCCL (issue 12): the library opened at run time (nccl_dyn.h), one
// communicator per call of ncclInit, all-reduce / broadcast enqueued on the addon's stream, a barrier that waits for
// the stream while watching NCCL's asynchronous error state, and the Node-API functions of this part of the addon
// (registered by addon.cc through registerCollective).
#define NAPI_VERSION 8
#include <node_api.h>

#include <dlfcn.h>
#include <glob.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common.cuh"
#include "nccl_dyn.h"
#include "ops.h"
#include "runtime.h"

namespace paro {
namespace nccl {
namespace {

struct Library {
  void* handle = nullptr;
  std::string path;
  Api api;
  int version = 0;
};

Library L;

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

bool isDir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/** A literal path as a glob(3) pattern: its wildcard characters escaped. */
std::string globEscape(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == '*' || c == '?' || c == '[' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

/** Files called libnccl.so.2 in the folders the patterns match (only those that exist). */
void globLibs(const std::vector<std::string>& dirPatterns, std::vector<std::string>* out) {
  for (const std::string& pat : dirPatterns) {
    glob_t g;
    if (glob((pat + "/libnccl.so.2").c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; i++) out->push_back(g.gl_pathv[i]);
    globfree(&g);
  }
}

/** Where libnccl.so.2 may be, in the order tried (PARO_NCCL_LIB handled by the caller). */
std::vector<std::string> candidates(const std::vector<std::string>& extra) {
  std::vector<std::string> c{"libnccl.so.2"};
  for (const std::string& e : extra) c.push_back(e);
  // The nvidia-nccl-cu12 / -cu13 wheels (PyTorch's dependency) keep it in site-packages/nvidia/nccl/lib.
  std::vector<std::string> dirs;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"}) {
    const char* prefix = getenv(var);
    if (!prefix || !*prefix) continue;
    std::string p = globEscape(prefix);
    dirs.push_back(p + "/lib/python3*/site-packages/nvidia/nccl/lib");
    dirs.push_back(p + "/lib");  // conda's nccl package
  }
  for (const char* pat : {"/opt/*/.venv/lib/python3*/site-packages/nvidia/nccl/lib",
                          "/opt/*/lib/python3*/site-packages/nvidia/nccl/lib",
                          "/usr/local/lib/python3*/dist-packages/nvidia/nccl/lib",
                          "/usr/local/lib/python3*/site-packages/nvidia/nccl/lib",
                          "/usr/lib/python3/dist-packages/nvidia/nccl/lib"})
    dirs.push_back(pat);
  if (const char* home = getenv("HOME"))
    if (*home) dirs.push_back(globEscape(home) + "/.local/lib/python3*/site-packages/nvidia/nccl/lib");
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* h = getenv(var))
      if (*h) dirs.push_back(globEscape(h) + "/lib64");
  for (const char* d : {"/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                        "/usr/local/lib", "/usr/lib64"})
    dirs.push_back(d);
  globLibs(dirs, &c);
  return c;
}

/** dlopen one file and look up the entry points; false (with *why) when it is not a usable NCCL. */
bool tryOpen(const std::string& file, std::string* why) {
  dlerror();
  void* h = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    *why = e ? e : "dlopen failed";
    return false;
  }
  Api a;
  const char* missing = nullptr;
  auto need = [&](const char* name) -> void* {
    void* s = dlsym(h, name);
    if (!s && !missing) missing = name;
    return s;
  };
  a.getVersion = (GetVersionFn)need("ncclGetVersion");
  a.getUniqueId = (GetUniqueIdFn)need("ncclGetUniqueId");
  a.commInitRank = (CommInitRankFn)need("ncclCommInitRank");
  a.allReduce = (AllReduceFn)need("ncclAllReduce");
  a.broadcast = (BroadcastFn)need("ncclBroadcast");
  a.commDestroy = (CommDestroyFn)need("ncclCommDestroy");
  a.getErrorString = (GetErrorStringFn)need("ncclGetErrorString");
  if (missing) {
    *why = std::string("it has no ") + missing + " (not an NCCL 2 library)";
    dlclose(h);
    return false;
  }
  a.commAbort = (CommAbortFn)dlsym(h, "ncclCommAbort");
  a.commGetAsyncError = (CommGetAsyncErrorFn)dlsym(h, "ncclCommGetAsyncError");
  a.getLastError = (GetLastErrorFn)dlsym(h, "ncclGetLastError");
  int v = 0;
  if (a.getVersion(&v) != kSuccess || v <= 0) {
    *why = "ncclGetVersion failed";
    dlclose(h);
    return false;
  }
  // Where the library really lives (the plain name resolves through the loader's search path).
  std::string where = file;
  Dl_info info;
  if (dladdr((void*)a.getVersion, &info) && info.dli_fname) where = info.dli_fname;
  L.handle = h;
  L.path = where;
  L.api = a;
  L.version = v;
  return true;
}


const char* const kWhereFrom =
    "NCCL comes with PyTorch's pip install (the nvidia-nccl-cu12 / nvidia-nccl-cu13 wheel, in "
    "site-packages/nvidia/nccl/lib) or the system package libnccl2; set PARO_NCCL_LIB to the file's path";

}  // namespace

std::string versionString(int code) {
  int major, minor, patch;
  if (code >= 10000) {
    major = code / 10000;
    minor = (code % 10000) / 100;
    patch = code % 100;
  } else {
    major = code / 1000;
    minor = (code % 1000) / 100;
    patch = code % 100;
  }
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

bool load(const std::vector<std::string>& extraPaths, std::string* loadedFrom, std::string* error) {
  if (L.handle) {
    *loadedFrom = L.path;
    return true;
  }
  // NVLink multicast (NVLS) stays off unless the user asked otherwise: it can put shared GPUs out of service.
  // Set before the library is opened, so NCCL reads it whenever it first looks.
  setenv("NCCL_NVLS_ENABLE", "0", 0);
  const char* explicitLib = getenv("PARO_NCCL_LIB");
  if (explicitLib && *explicitLib) {
    std::string file = explicitLib;
    if (isDir(file)) file += "/libnccl.so.2";
    std::string why;
    if (!exists(file)) {
      *error = "PARO_NCCL_LIB names " + file + ", which does not exist (" + kWhereFrom + ")";
    } else if (!tryOpen(file, &why)) {
      *error = "PARO_NCCL_LIB names " + file + ", which cannot be used: " + why;
    } else {
      *loadedFrom = L.path;
      return true;
    }
    return false;
  }
  std::vector<std::string> tried, failures;
  for (const std::string& file : candidates(extraPaths)) {
    bool dup = false;
    for (const std::string& t : tried) dup = dup || t == file;
    if (dup) continue;
    tried.push_back(file);
    bool plain = file.find('/') == std::string::npos;
    if (!plain && !exists(file)) continue;
    std::string why;
    if (tryOpen(file, &why)) {
      *loadedFrom = L.path;
      return true;
    }
    // A plain name that is simply absent is the usual case, not worth reporting; anything else is.
    if (!plain || why.find("No such file") == std::string::npos) failures.push_back(file + ": " + why);
  }
  std::string msg =
      "NCCL library libnccl.so.2 not found or not loadable (tried the system library path; nvidia/nccl/lib under "
      "$VIRTUAL_ENV, $CONDA_PREFIX, /opt/*/.venv, ~/.local and /usr/local/lib/python3*; CUDA and system lib folders";
  for (const std::string& e : extraPaths) msg += "; " + e;
  msg += ")";
  for (const std::string& f : failures) msg += "; " + f;
  msg += ". ";
  msg += kWhereFrom;
  *error = msg;
  return false;
}

const Api& api() {
  if (!L.handle) {
    std::string from, err;
    if (!load({}, &from, &err)) throw CudaError(err);
  }
  return L.api;
}

int versionCode() { return L.version; }

}  // namespace nccl

// ---- communicators ----
namespace {

struct CommState {
  nccl::Comm comm = nullptr;
  int rank = 0, size = 1;
  void* flag = nullptr;  // one f32 on the device: the barrier's all-reduce
  bool aborted = false;
  std::string abortReason;
};

std::unordered_map<int, CommState> comms;
int nextComm = 1;

std::string ncclMessage(nccl::Result r, const char* what, nccl::Comm comm) {
  const nccl::Api& a = nccl::api();
  std::string msg = std::string("NCCL error in ") + what + ": " + a.getErrorString(r) + " (code " + std::to_string(r) + ")";
  if (a.getLastError) {
    const char* last = a.getLastError(comm);
    if (last && *last) msg += ": " + std::string(last);
  }
  return msg + " (NCCL " + nccl::versionString(nccl::versionCode()) + "; set NCCL_DEBUG=WARN for details)";
}

void checkNccl(nccl::Result r, const char* what, nccl::Comm comm) {
  if (r != nccl::kSuccess) throw CudaError(ncclMessage(r, what, comm));
}

CommState& commOf(int id) {
  auto it = comms.find(id);
  if (it == comms.end()) throw ArgError("unknown NCCL communicator " + std::to_string(id) + " (destroyed already?)");
  if (it->second.aborted) throw CudaError("the NCCL communicator was aborted after an error: " + it->second.abortReason);
  return it->second;
}

/** Abort the communicator (pending NCCL kernels return) and throw reason. */
[[noreturn]] void abortComm(CommState& s, const std::string& reason) {
  const nccl::Api& a = nccl::api();
  if (a.commAbort && s.comm) a.commAbort(s.comm);
  s.comm = nullptr;
  s.aborted = true;
  s.abortReason = reason;
  throw CudaError(reason);
}

/**
 * Wait until the stream is idle. A peer that died leaves NCCL's kernels waiting forever; NCCL notices (socket closed,
 * timeout) and reports it through ncclCommGetAsyncError, so the wait polls that too and aborts the communicator.
 */
void waitStream(CommState& s) {
  const nccl::Api& a = nccl::api();
  for (;;) {
    cudaError_t e = cudaStreamQuery(stream());
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) {
      synchronize();  // throws the CUDA error with the last kernel's name
      return;
    }
    if (a.commGetAsyncError) {
      nccl::Result async = nccl::kSuccess;
      nccl::Result r = a.commGetAsyncError(s.comm, &async);
      if (r != nccl::kSuccess) abortComm(s, ncclMessage(r, "ncclCommGetAsyncError", s.comm));
      if (async != nccl::kSuccess && async != nccl::kInProgress)
        abortComm(s, ncclMessage(async, "a collective (reported asynchronously; another rank may have failed)", s.comm));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

int ncclType(int dt, const char* op) {
  switch (dt) {
    case DT_F32: return nccl::kFloat32;
    case DT_F16: return nccl::kFloat16;
    case DT_I32: return nccl::kInt32;
    case DT_BF16:
      if (nccl::versionCode() < nccl::kVersionBf16)
        throw CudaError(std::string(op) + ": NCCL " + nccl::versionString(nccl::versionCode()) +
                        " has no bf16 collectives (2.10 or newer needed: update the nvidia-nccl wheel or the "
                        "libnccl2 package, or point PARO_NCCL_LIB at a newer libnccl.so.2)");
      return nccl::kBfloat16;
    default: throw ArgError(std::string(op) + ": unknown dtype code " + std::to_string(dt));
  }
}

std::vector<uint8_t> uniqueId() {
  const nccl::Api& a = nccl::api();
  nccl::UniqueId id;
  memset(&id, 0, sizeof id);
  checkNccl(a.getUniqueId(&id), "ncclGetUniqueId", nullptr);
  return std::vector<uint8_t>((const uint8_t*)id.internal, (const uint8_t*)id.internal + nccl::kUniqueIdBytes);
}

int commInit(const void* idBytes, size_t idLen, int worldSize, int rank) {
  if (idLen != nccl::kUniqueIdBytes)
    throw ArgError("NCCL unique id must be " + std::to_string(nccl::kUniqueIdBytes) + " bytes, got " + std::to_string(idLen));
  if (worldSize < 1 || rank < 0 || rank >= worldSize)
    throw ArgError("NCCL rank " + std::to_string(rank) + " of world size " + std::to_string(worldSize) + " is out of range");
  if (!deviceReady()) throw CudaError("NCCL communicator requested before the CUDA device was opened");
  const nccl::Api& a = nccl::api();
  nccl::UniqueId id;
  memcpy(id.internal, idBytes, nccl::kUniqueIdBytes);
  CommState s;
  s.rank = rank;
  s.size = worldSize;
  s.flag = devAlloc(sizeof(float));
  try {
    memsetD(s.flag, 0, sizeof(float));
    synchronize();
    checkNccl(a.commInitRank(&s.comm, worldSize, id, rank), "ncclCommInitRank", nullptr);
  } catch (...) {
    devFree(s.flag);
    throw;
  }
  int handle = nextComm++;
  comms[handle] = s;
  return handle;
}

void allReduce(int handle, void* p, int dt, size_t count, bool mean) {
  CommState& s = commOf(handle);
  if (count == 0) return;
  int type = ncclType(dt, "allReduce");
  const bool avg = mean && nccl::versionCode() >= nccl::kVersionBf16;  // ncclAvg from 2.10
  if (mean && dt == DT_I32) throw ArgError("allReduce: the mean of i32 tensors is not supported");
  checkNccl(nccl::api().allReduce(p, p, count, type, avg ? nccl::kAvg : nccl::kSum, s.comm, stream()), "ncclAllReduce",
            s.comm);
  if (mean && !avg && s.size > 1) scaleK(p, dt, p, dt, count, 1.0f / (float)s.size);
}

void broadcast(int handle, void* p, size_t bytes, int root) {
  CommState& s = commOf(handle);
  if (root < 0 || root >= s.size)
    throw ArgError("broadcast: root " + std::to_string(root) + " is not a rank of this communicator (world size " +
                   std::to_string(s.size) + ")");
  if (bytes == 0) return;
  // Bytes whatever the dtype: a broadcast copies, so bf16 works with any NCCL version.
  checkNccl(nccl::api().broadcast(p, p, bytes, nccl::kUint8, root, s.comm, stream()), "ncclBroadcast", s.comm);
}

/** values (host f64) become their sum or mean over all ranks, reduced in f64 on the device. */
void allReduceHost(int handle, double* values, size_t n, bool mean) {
  CommState& s = commOf(handle);
  if (n == 0) return;
  Scratch buf(n * sizeof(double));
  upload(buf.p, values, n * sizeof(double));
  checkNccl(nccl::api().allReduce(buf.p, buf.p, n, nccl::kFloat64, nccl::kSum, s.comm, stream()), "ncclAllReduce",
            s.comm);
  waitStream(s);
  download(values, buf.p, n * sizeof(double));
  if (mean)
    for (size_t i = 0; i < n; i++) values[i] /= (double)s.size;
}

void barrier(int handle) {
  CommState& s = commOf(handle);
  checkNccl(nccl::api().allReduce(s.flag, s.flag, 1, nccl::kFloat32, nccl::kSum, s.comm, stream()), "ncclAllReduce (barrier)",
            s.comm);
  waitStream(s);
}

void destroy(int handle) {
  auto it = comms.find(handle);
  if (it == comms.end()) return;  // destroyed already: nothing to do
  CommState s = it->second;
  comms.erase(it);
  if (!s.aborted && s.comm) {
    // Queued collectives finish before their communicator goes.
    synchronize();
    checkNccl(nccl::api().commDestroy(s.comm), "ncclCommDestroy", nullptr);
  }
  devFree(s.flag);
}

// ---- Node-API ----
struct JsArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void napiOk(napi_status st, const char* what) {
  if (st != napi_ok) throw JsArgError(std::string("Node-API call failed: ") + what);
}

struct CallArgs {
  napi_env env;
  size_t argc = 8;
  napi_value argv[8];
  CallArgs(napi_env e, napi_callback_info info) : env(e) {
    napiOk(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr), "napi_get_cb_info");
  }
  napi_value at(size_t i) const {
    if (i >= argc) throw ArgError("missing argument " + std::to_string(i));
    return argv[i];
  }
  double num(size_t i) const {
    double d = 0;
    if (napi_get_value_double(env, at(i), &d) != napi_ok) throw ArgError("argument " + std::to_string(i) + " must be a number");
    return d;
  }
  int i32(size_t i) const { return (int)num(i); }
  size_t sz(size_t i) const {
    double v = num(i);
    if (v < 0) throw ArgError("argument " + std::to_string(i) + " must not be negative");
    return (size_t)v;
  }
  void* ptr(size_t i) const { return (void*)(uintptr_t)(uint64_t)num(i); }
  /** Data and byte length of a typed array (Uint8Array, Buffer, Float64Array). */
  void* typed(size_t i, size_t* bytes, napi_typedarray_type want) const {
    bool is = false;
    napiOk(napi_is_typedarray(env, at(i), &is), "napi_is_typedarray");
    if (!is) throw ArgError("argument " + std::to_string(i) + " must be a typed array");
    napi_typedarray_type type;
    size_t length = 0, offset = 0;
    void* data = nullptr;
    napi_value buf;
    napiOk(napi_get_typedarray_info(env, at(i), &type, &length, &data, &buf, &offset), "napi_get_typedarray_info");
    if (type != want) throw ArgError("argument " + std::to_string(i) + " has the wrong typed array type");
    *bytes = length * (want == napi_float64_array ? 8 : 1);
    return data;
  }
  std::vector<std::string> strings(size_t i) const {
    std::vector<std::string> out;
    bool isArray = false;
    napiOk(napi_is_array(env, at(i), &isArray), "napi_is_array");
    if (!isArray) throw ArgError("argument " + std::to_string(i) + " must be an array of strings");
    uint32_t n = 0;
    napiOk(napi_get_array_length(env, at(i), &n), "napi_get_array_length");
    for (uint32_t k = 0; k < n; k++) {
      napi_value v;
      napiOk(napi_get_element(env, at(i), k, &v), "napi_get_element");
      size_t len = 0;
      if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) throw ArgError("expected a string");
      std::string s(len, '\0');
      napiOk(napi_get_value_string_utf8(env, v, &s[0], len + 1, &len), "napi_get_value_string_utf8");
      s.resize(len);
      out.push_back(s);
    }
    return out;
  }
};

napi_value undefinedValue(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

void setString(napi_env env, napi_value o, const char* name, const std::string& s) {
  napi_value v;
  napiOk(napi_create_string_utf8(env, s.c_str(), s.size(), &v), "napi_create_string_utf8");
  napiOk(napi_set_named_property(env, o, name, v), "napi_set_named_property");
}

void setNumber(napi_env env, napi_value o, const char* name, double d) {
  napi_value v;
  napiOk(napi_create_double(env, d, &v), "napi_create_double");
  napiOk(napi_set_named_property(env, o, name, v), "napi_set_named_property");
}

template <typename F>
napi_value guarded(napi_env env, F&& body) {
  try {
    return body();
  } catch (const ArgError& e) {
    napi_throw_error(env, "PARO_ARG", e.what());
  } catch (const std::exception& e) {
    napi_throw_error(env, "PARO_CUDA", e.what());
  }
  return nullptr;
}

// ncclLoad(extraPaths: string[]) -> { ok, path?, version?, versionString?, error? }
napi_value jsNcclLoad(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    CallArgs a(env, info);
    std::vector<std::string> extra = a.argc > 0 ? a.strings(0) : std::vector<std::string>{};
    std::string from, err;
    bool ok = nccl::load(extra, &from, &err);
    napi_value o, b;
    napiOk(napi_create_object(env, &o), "napi_create_object");
    napiOk(napi_get_boolean(env, ok, &b), "napi_get_boolean");
    napiOk(napi_set_named_property(env, o, "ok", b), "napi_set_named_property");
    if (ok) {
      setString(env, o, "path", from);
      setNumber(env, o, "version", nccl::versionCode());
      setString(env, o, "versionString", nccl::versionString(nccl::versionCode()));
    } else {
      setString(env, o, "error", err);
    }
    return o;
  });
}

// ncclUniqueId() -> Buffer(128)
napi_value jsNcclUniqueId(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    CallArgs a(env, info);
    std::vector<uint8_t> id = uniqueId();
    napi_value buf;
    void* data = nullptr;
    napiOk(napi_create_buffer_copy(env, id.size(), id.data(), &data, &buf), "napi_create_buffer_copy");
    return buf;
  });
}

// ncclInit(id: Uint8Array(128), worldSize, rank) -> communicator handle (number)
napi_value jsNcclInit(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    CallArgs a(env, info);
    size_t bytes = 0;
    void* id = a.typed(0, &bytes, napi_uint8_array);
    napi_value r;
    napiOk(napi_create_int32(env, commInit(id, bytes, a.i32(1), a.i32(2)), &r), "napi_create_int32");
    return r;
  });
}

// ncclAllReduce(comm, ptr, dtype, count, op: 0 sum | 1 mean)
napi_value jsNcclAllReduce(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    CallArgs a(env, info);
    int op = a.i32(4);
    if (op != 0 && op != 1) throw ArgError("allReduce: op must be 0 (sum) or 1 (mean)");
    allReduce(a.i32(0), a.ptr(1), a.i32(2), a.sz(3), op == 1);
    return undefinedValue(env);
  });
}

// ncclBroadcast(comm, ptr, bytes, root)
napi_value jsNcclBroadcast(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    CallArgs a(env, info);
    broadcast(a.i32(0), a.ptr(1), a.sz(2), a.i32(3));
    return undefinedValue(env);
  });
}

// ncclAllReduceHost(comm, values: Float64Array (in place), op: 0 sum | 1 mean)
napi_value jsNcclAllReduceHost(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    CallArgs a(env, info);
    size_t bytes = 0;
    double* values = (double*)a.typed(1, &bytes, napi_float64_array);
    int op = a.i32(2);
    if (op != 0 && op != 1) throw ArgError("allReduceNumbers: op must be 0 (sum) or 1 (mean)");
    allReduceHost(a.i32(0), values, bytes / sizeof(double), op == 1);
    return undefinedValue(env);
  });
}

// ncclBarrier(comm)
napi_value jsNcclBarrier(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    CallArgs a(env, info);
    barrier(a.i32(0));
    return undefinedValue(env);
  });
}

// ncclDestroy(comm)
napi_value jsNcclDestroy(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    CallArgs a(env, info);
    destroy(a.i32(0));
    return undefinedValue(env);
  });
}

}  // namespace

bool registerCollective(napi_env env, napi_value exports) {
  struct Fn {
    const char* name;
    napi_callback fn;
  };
  const Fn fns[] = {{"ncclLoad", jsNcclLoad},       {"ncclUniqueId", jsNcclUniqueId},
                    {"ncclInit", jsNcclInit},       {"ncclAllReduce", jsNcclAllReduce},
                    {"ncclBroadcast", jsNcclBroadcast}, {"ncclAllReduceHost", jsNcclAllReduceHost},
                    {"ncclBarrier", jsNcclBarrier}, {"ncclDestroy", jsNcclDestroy}};
  for (const Fn& f : fns) {
    napi_value fn;
    if (napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &fn) != napi_ok) return false;
    if (napi_set_named_property(env, exports, f.name, fn) != napi_ok) return false;
  }
  return true;
}

}  // namespace paro
