// The Givens kernels of native/src/k_paro.cu (v1 and v2) under the host emulation (test/givens-kernels-emu.test.ts):
// the test rewrites k_paro.cu into k_paro_emu.cc (shared memory and launches as for the fused kernels) and compiles
// this file, which adds what k_paro.cu needs beyond test/cuda-emu/common.cuh, includes it, and runs givensK and
// givensBwdK with PARO_GIVENS_KERNEL=v1 and v2 on the inputs the test wrote (raw f32/i32 files).
#include <cstdio>
#include <fstream>
#include <iostream>

#include "common.cuh"

#define __align__(n) alignas(n)
using std::isnan;

struct float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }

inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }

enum { cudaDevAttrMaxSharedMemoryPerMultiprocessor = 1, cudaDevAttrMaxSharedMemoryPerBlockOptin = 2 };
inline int cudaGetDevice(int* d) {
  *d = 0;
  return 0;
}
// An H100's limits (228 KiB per SM, 227 KiB per block), so the emulation picks the device's geometry.
inline int cudaDeviceGetAttribute(int* v, int attr, int) {
  *v = attr == cudaDevAttrMaxSharedMemoryPerMultiprocessor ? 233472 : 232448;
  return 0;
}

namespace paro {
inline void castK(const void* src, int sdt, void* dst, int ddt, size_t n) {
  for (size_t i = 0; i < n; i++) stf(dst, ddt, i, ldf(src, sdt, i));
}
}  // namespace paro

#include "k_paro_emu.cc"

#include "files.h"

// f32 values stored in dtype dt (bf16: rounded to nearest even), as raw bytes.
std::vector<uint8_t> store(const std::vector<float>& v, int dt) {
  std::vector<uint8_t> b(v.size() * (dt == paro::DT_BF16 ? 2 : 4));
  for (size_t i = 0; i < v.size(); i++) paro::stf(b.data(), dt, i, v[i]);
  return b;
}
std::vector<float> load(const std::vector<uint8_t>& b, int dt, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = paro::ldf(b.data(), dt, i);
  return v;
}

// argv: dir rows I K gs inverse dt (the dtype of x, y, dy and dx: 0 f32, 1 bf16)
int main(int argc, char** argv) {
  if (argc != 8) throw std::runtime_error("usage: dir rows I K gs inverse dt");
  std::string dir = argv[1];
  size_t rows = (size_t)atol(argv[2]);
  int I = atoi(argv[3]), K = atoi(argv[4]), gs = atoi(argv[5]);
  bool inverse = atoi(argv[6]) != 0;
  int dt = atoi(argv[7]);
  size_t n = rows * I;
  auto x = store(readFile<float>(dir + "/x", n), dt);
  auto dy = store(readFile<float>(dir + "/dy", n), dt);
  auto pairs = readFile<int>(dir + "/pairs", (size_t)K * I);
  auto theta = readFile<float>(dir + "/theta", (size_t)K * I / 2);
  // The warps per block v2 runs with (0: v1 runs instead), for the test to see that v2 ran.
  paro::GivensV2Geom fg{}, bg{};
  std::printf("v2 warps: forward %d backward %d\n", paro::v2Geometry(gs, K, false, fg) ? fg.warps : 0,
              paro::v2Geometry(gs, K, true, bg) ? bg.warps : 0);
  std::vector<uint8_t> y1(x.size());
  for (const char* version : {"v1", "v2"}) {
    setenv("PARO_GIVENS_KERNEL", version, 1);
    std::vector<uint8_t> y(x.size(), 0xff), dx(x.size(), 0xff);
    std::vector<float> dtheta((size_t)K * I / 2, NAN);
    paro::givensK(x.data(), dt, y.data(), dt, rows, I, pairs.data(), theta.data(), K, gs, inverse);
    if (std::string(version) == "v1") y1 = y;
    // Both backward passes take v1's forward output, so they see the same inputs.
    paro::givensBwdK(dy.data(), dt, y1.data(), dt, dx.data(), dt, dtheta.data(), rows, I, pairs.data(), theta.data(), K,
                     gs, inverse);
    writeFile(dir + "/" + version + ".y", load(y, dt, n));
    writeFile(dir + "/" + version + ".dx", load(dx, dt, n));
    writeFile(dir + "/" + version + ".dtheta", dtheta);
  }
  return 0;
}
