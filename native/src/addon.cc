// Node-API glue: one JS function per launcher. Device pointers travel as JS numbers (byte addresses below 2^53),
// dtypes as the DType codes, host arrays as typed arrays. Every C++ exception becomes a JS Error.
#define NAPI_VERSION 8
#include <node_api.h>

#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common.cuh"
#include "cublas_dyn.h"
#include "ops.h"
#include "runtime.h"

namespace paro {
namespace {

struct JsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void napiCheck(napi_status s, const char* what) {
  if (s != napi_ok) throw JsError(std::string("Node-API call failed: ") + what);
}

/** Reads the positional arguments of one call. */
class Args {
 public:
  Args(napi_env env, napi_callback_info info) : env_(env) {
    argc_ = kMax;
    napiCheck(napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr), "napi_get_cb_info");
  }
  napi_value at(size_t i) const {
    if (i >= argc_) throw JsError("missing argument " + std::to_string(i));
    return argv_[i];
  }
  double num(size_t i) const { return numOf(at(i)); }
  int i32(size_t i) const { return (int)num(i); }
  size_t sz(size_t i) const {
    double v = num(i);
    if (v < 0) throw JsError("argument " + std::to_string(i) + " must not be negative");
    return (size_t)v;
  }
  float f32(size_t i) const { return (float)num(i); }
  bool flag(size_t i) const {
    bool b = false;
    napiCheck(napi_get_value_bool(env_, at(i), &b), "napi_get_value_bool");
    return b;
  }
  void* ptr(size_t i) const {
    double v = num(i);
    return (void*)(uintptr_t)(uint64_t)v;
  }
  bool isNullish(size_t i) const {
    if (i >= argc_) return true;
    napi_valuetype t;
    napiCheck(napi_typeof(env_, argv_[i], &t), "napi_typeof");
    return t == napi_null || t == napi_undefined;
  }
  /** Data pointer and byte length of a typed array argument. */
  void* typed(size_t i, size_t* bytes) const {
    bool is = false;
    napiCheck(napi_is_typedarray(env_, at(i), &is), "napi_is_typedarray");
    if (!is) throw JsError("argument " + std::to_string(i) + " must be a typed array");
    napi_typedarray_type type;
    size_t length = 0, offset = 0;
    void* data = nullptr;
    napi_value buf;
    napiCheck(napi_get_typedarray_info(env_, at(i), &type, &length, &data, &buf, &offset), "napi_get_typedarray_info");
    size_t elem = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: elem = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
      default: elem = 1;
    }
    *bytes = length * elem;
    return data;
  }
  napi_value prop(size_t i, const char* name) const {
    napi_value v;
    napiCheck(napi_get_named_property(env_, at(i), name, &v), "napi_get_named_property");
    return v;
  }
  double numOf(napi_value v) const {
    double d = 0;
    if (napi_get_value_double(env_, v, &d) != napi_ok) throw JsError("expected a number argument");
    return d;
  }

 private:
  static constexpr size_t kMax = 32;
  napi_env env_;
  size_t argc_;
  napi_value argv_[kMax];
};

napi_value undef(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

napi_value number(napi_env env, double v) {
  napi_value r;
  napiCheck(napi_create_double(env, v, &r), "napi_create_double");
  return r;
}

napi_value boolean(napi_env env, bool v) {
  napi_value r;
  napiCheck(napi_get_boolean(env, v, &r), "napi_get_boolean");
  return r;
}

napi_value string(napi_env env, const std::string& s) {
  napi_value r;
  napiCheck(napi_create_string_utf8(env, s.c_str(), s.size(), &r), "napi_create_string_utf8");
  return r;
}

void setProp(napi_env env, napi_value obj, const char* name, napi_value v) {
  napiCheck(napi_set_named_property(env, obj, name, v), "napi_set_named_property");
}

napi_value object(napi_env env) {
  napi_value o;
  napiCheck(napi_create_object(env, &o), "napi_create_object");
  return o;
}

napi_value deviceObject(napi_env env, const DeviceInfo& d) {
  napi_value o = object(env);
  setProp(env, o, "name", string(env, d.name));
  setProp(env, o, "totalMemoryBytes", number(env, (double)d.totalMemoryBytes));
  setProp(env, o, "ccMajor", number(env, d.ccMajor));
  setProp(env, o, "ccMinor", number(env, d.ccMinor));
  setProp(env, o, "smCount", number(env, d.smCount));
  return o;
}

/** Runs body; any exception becomes a thrown JS Error (code PARO_CUDA, PARO_ARG for caller errors). */
napi_value guard(napi_env env, const std::function<napi_value()>& body) {
  try {
    return body();
  } catch (const ArgError& e) {
    napi_throw_error(env, "PARO_ARG", e.what());
  } catch (const std::exception& e) {
    napi_throw_error(env, "PARO_CUDA", e.what());
  }
  return nullptr;
}

/** Upload a host typed array into a scratch device buffer (for index arrays and small tables). */
struct HostArray {
  Scratch dev;
  HostArray(const Args& a, size_t i, size_t* bytesOut = nullptr) : dev(bytesOf(a, i)) {
    size_t bytes = 0;
    void* data = a.typed(i, &bytes);
    upload(dev.p, data, bytes);
    if (bytesOut) *bytesOut = bytes;
  }
  static size_t bytesOf(const Args& a, size_t i) {
    size_t b = 0;
    a.typed(i, &b);
    return b;
  }
};

AttnDims readDims(const Args& a, size_t i) {
  AttnDims d;
  d.batch = (int)a.numOf(a.prop(i, "batch"));
  d.tq = (int)a.numOf(a.prop(i, "tq"));
  d.tk = (int)a.numOf(a.prop(i, "tk"));
  d.kvStride = (int)a.numOf(a.prop(i, "kvStride"));
  d.heads = (int)a.numOf(a.prop(i, "heads"));
  d.kvHeads = (int)a.numOf(a.prop(i, "kvHeads"));
  d.headDim = (int)a.numOf(a.prop(i, "headDim"));
  d.scale = (float)a.numOf(a.prop(i, "scale"));
  return d;
}

#define FN(name) napi_value name(napi_env env, napi_callback_info info)
#define BODY(...) return guard(env, [&]() -> napi_value { Args a(env, info); __VA_ARGS__ })

// ---- device and memory ----
FN(jsProbe) {
  BODY({
    Probe p = probe();
    napi_value o = object(env);
    setProp(env, o, "runtimeVersion", number(env, p.runtimeVersion));
    setProp(env, o, "driverVersion", number(env, p.driverVersion));
    setProp(env, o, "deviceCount", number(env, p.deviceCount));
    setProp(env, o, "error", number(env, p.error));
    setProp(env, o, "errorName", string(env, p.errorName));
    setProp(env, o, "errorString", string(env, p.errorString));
    void* libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!libcuda) libcuda = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    setProp(env, o, "libcudaFound", boolean(env, libcuda != nullptr));
    napi_value arr;
    napiCheck(napi_create_array_with_length(env, p.devices.size(), &arr), "napi_create_array");
    for (size_t i = 0; i < p.devices.size(); i++)
      napiCheck(napi_set_element(env, arr, (uint32_t)i, deviceObject(env, p.devices[i])), "napi_set_element");
    setProp(env, o, "devices", arr);
    return o;
  });
}

FN(jsCublasProbe) {
  BODY({
    std::string path, err;
    bool ok = cublasLoad(&path, &err);
    napi_value o = object(env);
    setProp(env, o, "ok", boolean(env, ok));
    setProp(env, o, ok ? "path" : "error", string(env, ok ? path : err));
    return o;
  });
}

FN(jsInit) {
  BODY({
    DeviceInfo d = initDevice(a.i32(0), a.flag(1));
    napi_value o = deviceObject(env, d);
    setProp(env, o, "cublasVersion", number(env, cublasVersionNumber()));
    return o;
  });
}

FN(jsAlloc) {
  BODY({
    void* p = devAlloc(a.sz(0));
    if ((uint64_t)(uintptr_t)p >= (1ull << 53)) throw CudaError("device address does not fit a JS number");
    return number(env, (double)(uintptr_t)p);
  });
}

FN(jsFree) { BODY({ devFree(a.ptr(0)); return undef(env); }); }

FN(jsMemStats) {
  BODY({
    MemStats s = memStats();
    napi_value o = object(env);
    setProp(env, o, "liveBytes", number(env, (double)s.liveBytes));
    setProp(env, o, "cachedBytes", number(env, (double)s.cachedBytes));
    setProp(env, o, "peakBytes", number(env, (double)s.peakBytes));
    setProp(env, o, "mallocs", number(env, (double)s.mallocs));
    setProp(env, o, "hits", number(env, (double)s.hits));
    setProp(env, o, "freeBytes", number(env, (double)s.freeBytes));
    setProp(env, o, "totalBytes", number(env, (double)s.totalBytes));
    return o;
  });
}

FN(jsEmptyCache) { BODY({ emptyCache(); return undef(env); }); }

FN(jsUpload) {
  BODY({
    size_t bytes = 0;
    void* data = a.typed(1, &bytes);
    upload(a.ptr(0), data, bytes);
    return undef(env);
  });
}

FN(jsDownload) {
  BODY({
    size_t bytes = 0;
    void* data = a.typed(1, &bytes);
    download(data, a.ptr(0), bytes);
    return undef(env);
  });
}

void finalizePinned(napi_env, void* data, void*) { hostFreePinned(data); }

// An ArrayBuffer over page-locked host memory, freed by the garbage collector.
FN(jsHostAlloc) {
  BODY({
    size_t bytes = a.sz(0);
    void* p = hostAllocPinned(bytes);
    napi_value ab;
    if (napi_create_external_arraybuffer(env, p, bytes, finalizePinned, nullptr, &ab) != napi_ok) {
      hostFreePinned(p);
      throw JsError("napi_create_external_arraybuffer failed");
    }
    return ab;
  });
}

FN(jsMemset) { BODY({ memsetD(a.ptr(0), 0, a.sz(1)); return undef(env); }); }
FN(jsCopy) { BODY({ copyD2D(a.ptr(0), a.ptr(1), a.sz(2)); return undef(env); }); }
FN(jsCopy2d) {
  BODY({ copy2D(a.ptr(0), a.sz(1), a.ptr(2), a.sz(3), a.sz(4), a.sz(5)); return undef(env); });
}
FN(jsSynchronize) { BODY({ synchronize(); return undef(env); }); }
FN(jsLastKernel) { BODY({ return string(env, lastKernel()); }); }

// ---- elementwise ----
FN(jsCast) { BODY({ castK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.sz(4)); return undef(env); }); }
FN(jsFill) { BODY({ fillK(a.ptr(0), a.i32(1), a.sz(2), a.f32(3)); return undef(env); }); }
FN(jsRandom) { BODY({ randomK(a.ptr(0), a.i32(1), a.sz(2), (uint32_t)a.num(3)); return undef(env); }); }
FN(jsAdd) {
  BODY({ addK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), a.sz(6), a.sz(7)); return undef(env); });
}
FN(jsAxpy) { BODY({ axpyK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.sz(4), a.f32(5)); return undef(env); }); }
FN(jsScale) { BODY({ scaleK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.sz(4), a.f32(5)); return undef(env); }); }
FN(jsColOp) {
  BODY({
    colOpK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), a.sz(6), a.sz(7), a.flag(8));
    return undef(env);
  });
}
FN(jsSwiglu) {
  BODY({ swigluK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), a.sz(6)); return undef(env); });
}
FN(jsSwigluBwd) {
  BODY({
    swigluBwdK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), a.ptr(6), a.i32(7), a.ptr(8), a.i32(9),
               a.sz(10));
    return undef(env);
  });
}
FN(jsAdamw) {
  BODY({
    adamwK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), a.ptr(6), a.i32(7), a.sz(8), a.f32(9),
           a.f32(10), a.f32(11), a.f32(12), a.f32(13), a.f32(14), a.f32(15));
    return undef(env);
  });
}
FN(jsGatherRows) {
  BODY({
    size_t idBytes = 0;
    HostArray ids(a, 1, &idBytes);
    gatherRowsK(a.ptr(0), ids.dev.as<int>(), a.ptr(2), idBytes / 4, a.sz(3));
    return undef(env);
  });
}
// scatterRows(src, sdt, dst, ddt, rows Int32Array, cols)
FN(jsScatterRows) {
  BODY({
    size_t rowBytes = 0;
    HostArray rows(a, 4, &rowBytes);
    scatterRowsK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), rows.dev.as<int>(), rowBytes / 4, a.sz(5));
    return undef(env);
  });
}
FN(jsCast2d) {
  BODY({
    cast2DK(a.ptr(0), a.i32(1), a.sz(2), a.ptr(3), a.i32(4), a.sz(5), a.sz(6), a.sz(7));
    return undef(env);
  });
}
FN(jsRope) {
  BODY({
    HostArray pos(a, 6), inv(a, 7);
    ropeK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.sz(4), a.i32(5), pos.dev.as<int>(), inv.dev.as<float>(), a.i32(8),
          a.flag(9));
    return undef(env);
  });
}

// ---- reductions and rows ----
FN(jsColReduce) {
  BODY({
    colReduceK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), (const float*)a.ptr(4), a.sz(5), a.sz(6), (float*)a.ptr(7));
    return undef(env);
  });
}
FN(jsSumSquares) { BODY({ return number(env, sumSquaresK(a.ptr(0), a.i32(1), a.sz(2))); }); }
FN(jsNonFinite) { BODY({ return boolean(env, nonFiniteK(a.ptr(0), a.i32(1), a.sz(2))); }); }
FN(jsSmoothL1) {
  BODY({ return number(env, smoothL1K(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.sz(4), a.ptr(5), a.i32(6))); });
}
FN(jsRmsnorm) {
  BODY({
    rmsnormK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), (float*)a.ptr(6), a.sz(7), a.i32(8),
             a.f32(9));
    return undef(env);
  });
}
FN(jsRmsnormBwd) {
  BODY({
    rmsnormBwdK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), (const float*)a.ptr(6), a.ptr(7),
                a.i32(8), (float*)a.ptr(9), a.sz(10), a.i32(11));
    return undef(env);
  });
}
FN(jsCrossEntropy) {
  BODY({
    HostArray labels(a, 4);
    bool hasW = !a.isNullish(5);
    Scratch wdev(hasW ? HostArray::bytesOf(a, 5) : 0);
    if (hasW) {
      size_t wb = 0;
      void* w = a.typed(5, &wb);
      upload(wdev.p, w, wb);
    }
    crossEntropyK(a.ptr(0), a.i32(1), a.sz(2), a.sz(3), labels.dev.as<int>(), wdev.as<float>(), (float*)a.ptr(6),
                  (float*)a.ptr(7), a.ptr(8), a.i32(9));
    return undef(env);
  });
}
FN(jsArgmax) {
  BODY({
    size_t rows = a.sz(2);
    Scratch out(rows * 4);
    argmaxK(a.ptr(0), a.i32(1), rows, a.sz(3), out.as<int>());
    napi_value ab, ta;
    void* data = nullptr;
    napiCheck(napi_create_arraybuffer(env, rows * 4, &data, &ab), "napi_create_arraybuffer");
    download(data, out.p, rows * 4);
    napiCheck(napi_create_typedarray(env, napi_int32_array, rows, ab, 0, &ta), "napi_create_typedarray");
    return ta;
  });
}

// ---- ParoQuant ----
FN(jsGivens) {
  BODY({
    givensK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.sz(4), a.i32(5), (const int*)a.ptr(6), (const float*)a.ptr(7),
            a.i32(8), a.i32(9), a.flag(10));
    return undef(env);
  });
}
FN(jsGivensBwd) {
  BODY({
    givensBwdK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), (float*)a.ptr(6), a.sz(7), a.i32(8),
               (const int*)a.ptr(9), (const float*)a.ptr(10), a.i32(11), a.i32(12), a.flag(13));
    return undef(env);
  });
}
FN(jsFqMinMax) {
  BODY({
    fqMinMaxK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), (float*)a.ptr(4), (float*)a.ptr(5), a.sz(6), a.i32(7), a.i32(8));
    return undef(env);
  });
}
FN(jsFqMinMaxBwd) {
  BODY({
    fqMinMaxBwdK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), (const float*)a.ptr(4), (const float*)a.ptr(5), a.ptr(6),
                 a.i32(7), a.sz(8), a.i32(9), a.i32(10));
    return undef(env);
  });
}
FN(jsFqParams) {
  BODY({
    fqParamsK(a.ptr(0), a.i32(1), (const float*)a.ptr(2), (const float*)a.ptr(3), a.ptr(4), a.i32(5), a.sz(6),
              a.i32(7), a.i32(8));
    return undef(env);
  });
}
FN(jsFqParamsBwd) {
  BODY({
    fqParamsBwdK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), (const float*)a.ptr(4), (const float*)a.ptr(5), a.ptr(6),
                 a.i32(7), (float*)a.ptr(8), a.sz(9), a.i32(10), a.i32(11));
    return undef(env);
  });
}
// paroTransform(W,wdt, alpha, pairs, theta, pScale|0, pZpf|0, out,odt, gScale|0, gZpf|0, O, I, K, gs, qmax
//               [, resid|0, rdt, extremes|0])
FN(jsParoTransform) {
  BODY({
    bool resid = !a.isNullish(16);
    paroTransformK(a.ptr(0), a.i32(1), (const float*)a.ptr(2), (const int*)a.ptr(3), (const float*)a.ptr(4),
                   (const float*)a.ptr(5), (const float*)a.ptr(6), a.ptr(7), a.i32(8), (float*)a.ptr(9),
                   (float*)a.ptr(10), a.i32(11), a.i32(12), a.i32(13), a.i32(14), a.i32(15),
                   resid ? a.ptr(16) : nullptr, resid ? a.i32(17) : 0, resid ? (int*)a.ptr(18) : nullptr);
    return undef(env);
  });
}
// paroScaleGrad(dWhat,ddt, E,edt, scale, S, nGroups, gs)
FN(jsParoScaleGrad) {
  BODY({
    paroScaleGradK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), (const float*)a.ptr(4), (float*)a.ptr(5), a.sz(6), a.i32(7));
    return undef(env);
  });
}
// paroMinMaxGram(S, extremes, W,wdt, alpha, out, O, I, gs, qmax)
FN(jsParoMinMaxGram) {
  BODY({
    paroMinMaxGramK((const float*)a.ptr(0), (const int*)a.ptr(1), a.ptr(2), a.i32(3), (const float*)a.ptr(4),
                    (float*)a.ptr(5), a.i32(6), a.i32(7), a.i32(8), a.i32(9));
    return undef(env);
  });
}
// groupGram(a,adt, b,bdt, alpha|0, out, O, I, gs)
FN(jsGroupGram) {
  BODY({
    groupGramK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), (const float*)a.ptr(4), (float*)a.ptr(5), a.i32(6), a.i32(7),
               a.i32(8));
    return undef(env);
  });
}
// paroTransformBwd(dWhat,ddt, W,wdt, alpha, pairs, theta, scale, zpf, stage, dtheta|0, dalpha|0, dW|0,dwdt,
//                  dscale|0, O, I, K, gs, qmax)
FN(jsParoTransformBwd) {
  BODY({
    paroTransformBwdK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), (const float*)a.ptr(4), (const int*)a.ptr(5),
                      (const float*)a.ptr(6), (const float*)a.ptr(7), (const float*)a.ptr(8), a.i32(9),
                      (float*)a.ptr(10), (float*)a.ptr(11), a.ptr(12), a.i32(13), (float*)a.ptr(14), a.i32(15),
                      a.i32(16), a.i32(17), a.i32(18), a.i32(19));
    return undef(env);
  });
}
FN(jsQuantizePacked) {
  BODY({
    quantizePackedK(a.ptr(0), a.i32(1), (const float*)a.ptr(2), (const float*)a.ptr(3), (int*)a.ptr(4), a.i32(5),
                    a.i32(6), a.i32(7), a.i32(8), (unsigned)a.i32(9));
    return undef(env);
  });
}
FN(jsDequantizePacked) {
  BODY({
    dequantizePackedK((const int*)a.ptr(0), (const int*)a.ptr(1), (const float*)a.ptr(2), (float*)a.ptr(3), a.i32(4),
                      a.i32(5), a.i32(6), (unsigned)a.i32(7));
    return undef(env);
  });
}

// ---- attention: dims and mask as objects ----
struct MaskArgs {
  AttnMask m{};
  Scratch anchors, keep;
  MaskArgs(const Args& a, size_t i)
      : anchors(a.isNullish(i + 1) ? 0 : HostArray::bytesOf(a, i + 1)),
        keep(a.isNullish(i + 2) ? 0 : HostArray::bytesOf(a, i + 2)) {
    m.kind = (int)a.numOf(a.prop(i, "kind"));
    m.qOffset = (int)a.numOf(a.prop(i, "qOffset"));
    m.ctxLen = (int)a.numOf(a.prop(i, "ctxLen"));
    m.blockSize = (int)a.numOf(a.prop(i, "blockSize"));
    m.nBlocks = (int)a.numOf(a.prop(i, "nBlocks"));
    if (m.kind == MASK_DFLASH) {
      if (!anchors.p || !keep.p) throw ArgError("dflash mask needs anchors and keep");
      size_t b = 0;
      void* d = a.typed(i + 1, &b);
      upload(anchors.p, d, b);
      d = a.typed(i + 2, &b);
      upload(keep.p, d, b);
      m.anchors = anchors.as<int>();
      m.keep = keep.as<int>();
    } else if (m.kind == MASK_CAUSAL && anchors.p) {
      // Per-entry causal offsets arrive in the anchors slot (cuda/backend.ts attnArgs): [batch] on the device.
      size_t b = 0;
      void* d = a.typed(i + 1, &b);
      upload(anchors.p, d, b);
      m.qOffsets = anchors.as<int>();
    }
  }
};

// attention(q,qdt,k,kdt,v,vdt,out,odt,lse, dims, mask, anchors|null, keep|null, forceScalar)
FN(jsAttention) {
  BODY({
    AttnDims d = readDims(a, 9);
    MaskArgs mk(a, 10);
    attentionFwdK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), a.ptr(6), a.i32(7), (float*)a.ptr(8), d,
                  mk.m, a.flag(13));
    return undef(env);
  });
}

// attentionBwd(dout,dodt,q,qdt,k,kdt,v,vdt,out,odt,lse,dq,dqdt,dk,dkdt,dv,dvdt, dims, mask, anchors, keep, forceScalar)
FN(jsAttentionBwd) {
  BODY({
    AttnDims d = readDims(a, 17);
    MaskArgs mk(a, 18);
    attentionBwdK(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), a.ptr(6), a.i32(7), a.ptr(8), a.i32(9),
                  (const float*)a.ptr(10), a.ptr(11), a.i32(12), a.ptr(13), a.i32(14), a.ptr(15), a.i32(16), d, mk.m,
                  a.flag(21));
    return undef(env);
  });
}

// ---- GEMM ----
FN(jsGemm) {
  BODY({
    gemm(a.ptr(0), a.i32(1), a.ptr(2), a.i32(3), a.ptr(4), a.i32(5), a.i32(6), a.i32(7), a.i32(8), a.flag(9),
         a.flag(10), a.f32(11), a.f32(12));
    return undef(env);
  });
}
FN(jsBenchCublas) { BODY({ return number(env, benchCublasBf16(a.i32(0), a.i32(1), a.i32(2), a.i32(3))); }); }

struct Entry {
  const char* name;
  napi_callback fn;
};

const Entry kEntries[] = {
    {"probe", jsProbe}, {"cublasProbe", jsCublasProbe}, {"init", jsInit}, {"alloc", jsAlloc}, {"free", jsFree},
    {"memStats", jsMemStats}, {"emptyCache", jsEmptyCache}, {"hostAlloc", jsHostAlloc}, {"upload", jsUpload}, {"download", jsDownload},
    {"memset", jsMemset}, {"copy", jsCopy}, {"copy2d", jsCopy2d}, {"synchronize", jsSynchronize},
    {"lastKernel", jsLastKernel}, {"cast", jsCast}, {"fill", jsFill}, {"random", jsRandom}, {"add", jsAdd},
    {"axpy", jsAxpy}, {"scale", jsScale}, {"colOp", jsColOp}, {"swiglu", jsSwiglu}, {"swigluBwd", jsSwigluBwd},
    {"adamw", jsAdamw}, {"gatherRows", jsGatherRows}, {"scatterRows", jsScatterRows}, {"cast2d", jsCast2d}, {"rope", jsRope},
    {"colReduce", jsColReduce}, {"sumSquares", jsSumSquares}, {"nonFinite", jsNonFinite}, {"smoothL1", jsSmoothL1},
    {"rmsnorm", jsRmsnorm}, {"rmsnormBwd", jsRmsnormBwd}, {"crossEntropy", jsCrossEntropy}, {"argmax", jsArgmax},
    {"givens", jsGivens}, {"givensBwd", jsGivensBwd}, {"fqMinMax", jsFqMinMax}, {"fqMinMaxBwd", jsFqMinMaxBwd},
    {"fqParams", jsFqParams}, {"fqParamsBwd", jsFqParamsBwd}, {"quantizePacked", jsQuantizePacked},
    {"dequantizePacked", jsDequantizePacked}, {"paroTransform", jsParoTransform}, {"paroTransformBwd", jsParoTransformBwd},
    {"paroScaleGrad", jsParoScaleGrad}, {"paroMinMaxGram", jsParoMinMaxGram}, {"groupGram", jsGroupGram},
    {"attention", jsAttention},
    {"attentionBwd", jsAttentionBwd}, {"gemm", jsGemm}, {"benchCublas", jsBenchCublas},
};

}  // namespace

/** The NCCL functions (ncclLoad, ncclInit, ncclAllReduce, ...): collective.cu. */
bool registerCollective(napi_env env, napi_value exports);
}  // namespace paro

extern "C" NAPI_MODULE_EXPORT napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  for (const paro::Entry& e : paro::kEntries) {
    napi_value fn;
    if (napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.fn, nullptr, &fn) != napi_ok) return nullptr;
    if (napi_set_named_property(env, exports, e.name, fn) != napi_ok) return nullptr;
  }
  if (!paro::registerCollective(env, exports)) return nullptr;
  return exports;
}
