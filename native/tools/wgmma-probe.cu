// The layouts native/src/wgmma.cuh assumes, tested on the device itself (nvcc -arch=sm_90a, H100/H200): one
// m64n128k16 product with both operands in shared memory (K-major core matrices: LBO between chunks of K, SBO between
// groups of 8 rows), the same descriptors with LBO and SBO exchanged (which convention the hardware reads), A from
// registers in mma.sync's A layout, and both operands in the 128-byte swizzle layout at the second k16 step of an atom
// (start address + 32 bytes) with A from shared memory and from registers; each against a host product, with the
// accumulator layout of wgmma.cuh.
// Prints one line per form: "wgmma <form>: maxAbs=<e> <ok|BAD>". Exit code 1 if the assumed forms are wrong.
//   nvcc -std=c++17 -arch=sm_90a -o /tmp/wgmma-probe native/tools/wgmma-probe.cu && /tmp/wgmma-probe
#include <cuda_bf16.h>
#include <cmath>
#include <cstdio>
#include <vector>
#include "../src/wgmma.cuh"

using namespace paro;

// Element (r, k) of a K-major tile with K = 16 (two chunks): byte (r/8)·sbo + (k/8)·lbo + (r%8)·16 + (k%8)·2.
__device__ __host__ inline int elemOffset(int r, int k, int lbo, int sbo) {
  return ((r / 8) * sbo + (k / 8) * lbo + (r % 8) * 16 + (k % 8) * 2) / 2;
}

// Element (r, k) of a K-major tile with K = 64 in 128-byte swizzle atoms (8 rows × 128 bytes, 1024 bytes each).
__device__ __host__ inline int swizzledOffset(int r, int k) {
  return ((r / 8) * 1024 + (r % 8) * 128 + (((k / 8) ^ (r % 8)) * 16) + (k % 8) * 2) / 2;
}

// Element (n, k) of B stored MN-major (row k, n contiguous) in 128-byte swizzle atoms of 8 rows × 64 elements: rows
// k, n in 0..63 in the first column of atoms, n in 64..127 in the second (2048 bytes on, after the 2 atoms of K 16).
__device__ __host__ inline int mnOffset(int n, int k) {
  const int byte = (n / 64) * 2048 + (k / 8) * 1024 + (k % 8) * 128 + (n % 64) * 2;
  return (byte ^ (((byte >> 7) & 7) << 4)) / 2;
}

// form 0: SS with the assumed descriptor; 1: SS with LBO and SBO exchanged in the descriptors; 2: A from registers;
// 3: SS, 128-byte swizzle, k16 step 1 (a and b hold columns 16..31 of 64-wide rows); 4: as 3 with A from registers;
// 5: A from registers, B MN-major (transposed) in swizzle atoms through wgDescMn; 6: as 5 with the descriptor's LBO
// and SBO exchanged (the other reading of kWgMnLboAlongMn); 7: A and B both MN-major in shared memory (wgmmaSS<1, 1>:
// A element (m, k) at row k, m contiguous, as dQ = dS·K would read a dSᵀ tile).
__global__ void probe(const __nv_bfloat16* a, const __nv_bfloat16* b, float* out, int form) {
  constexpr int LBO = 128, SBO = 256;  // chunks of K adjacent, then 8-row groups
  __shared__ __align__(1024) __nv_bfloat16 sA[64 * 64], sB[128 * 64];
  const bool sw = form == 3 || form == 4, mn = form >= 5, mnA = form == 7;
  for (int i = threadIdx.x; i < 64 * 64; i += 128) sA[i] = __float2bfloat16(100.0f);  // wrong reads show
  for (int i = threadIdx.x; i < 128 * 64; i += 128) sB[i] = __float2bfloat16(100.0f);
  __syncthreads();
  for (int i = threadIdx.x; i < 64 * 16; i += 128)
    sA[mnA ? mnOffset(i / 16, i % 16) : sw ? swizzledOffset(i / 16, 16 + i % 16) : elemOffset(i / 16, i % 16, LBO, SBO)] = a[i];
  for (int i = threadIdx.x; i < 128 * 16; i += 128) {
    const int n = i / 16, k = i % 16;
    sB[mn ? mnOffset(n, k) : sw ? swizzledOffset(n, 16 + k) : elemOffset(n, k, LBO, SBO)] = b[i];
  }
  fenceProxyAsync();
  __syncthreads();
  const uint32_t aAddr = (uint32_t)__cvta_generic_to_shared(sA), bAddr = (uint32_t)__cvta_generic_to_shared(sB);
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  float d[16][4];
  for (int j = 0; j < 16; j++) d[j][0] = d[j][1] = d[j][2] = d[j][3] = 0.0f;
  wgFenceAcc(d);
  wgFence();
  if (form == 0) wgmmaSS(d, wgDesc(aAddr, LBO, SBO), wgDesc(bAddr, LBO, SBO), 1);
  if (form == 1) wgmmaSS(d, wgDesc(aAddr, SBO, LBO), wgDesc(bAddr, SBO, LBO), 1);
  if (form == 3)
    wgmmaSS(d, wgDesc(aAddr + 32, 16, 1024, kWgSwizzle128), wgDesc(bAddr + 32, 16, 1024, kWgSwizzle128), 1);
  if (form == 7) wgmmaSS<1, 1>(d, wgDescMn(aAddr, 2048), wgDescMn(bAddr, 2048), 1);
  if (form == 2 || (form >= 4 && form <= 6)) {
    auto pk = [&](int r, int k) {
      __nv_bfloat162 v;
      v.x = a[r * 16 + k];
      v.y = a[r * 16 + k + 1];
      return *reinterpret_cast<uint32_t*>(&v);
    };
    const int r0 = 16 * w + g;
    const uint32_t fr[4] = {pk(r0, 2 * t), pk(r0 + 8, 2 * t), pk(r0, 2 * t + 8), pk(r0 + 8, 2 * t + 8)};
    if (form == 2) wgmmaRS(d, fr, wgDesc(bAddr, LBO, SBO));
    if (form == 4) wgmmaRS(d, fr, wgDesc(bAddr + 32, 16, 1024, kWgSwizzle128));
    const uint64_t mnDesc = wgDescMn(bAddr, 2048);
    // form 6: the same strides with LBO and SBO exchanged (bits 16–29 and 32–45).
    const uint64_t swapped = (mnDesc & ~((0x3FFFull << 16) | (0x3FFFull << 32))) | (((mnDesc >> 16) & 0x3FFF) << 32) |
                             (((mnDesc >> 32) & 0x3FFF) << 16);
    if (form == 5) wgmmaRS<1>(d, fr, mnDesc);
    if (form == 6) wgmmaRS<1>(d, fr, swapped);
  }
  wgCommit();
  wgWait<0>();
  wgFenceAcc(d);
  for (int j = 0; j < 16; j++)
    for (int e = 0; e < 4; e++) out[(16 * w + g + 8 * (e / 2)) * 128 + 8 * j + 2 * t + e % 2] = d[j][e];
}

int main() {
  std::vector<__nv_bfloat16> a(64 * 16), b(128 * 16);
  std::vector<float> af(a.size()), bf(b.size());
  unsigned s = 12345;
  auto rnd = [&]() { s = s * 1664525u + 1013904223u; return ((s >> 8) & 0xffff) / 32768.0f - 1.0f; };
  for (size_t i = 0; i < a.size(); i++) { a[i] = __float2bfloat16(rnd()); af[i] = __bfloat162float(a[i]); }
  for (size_t i = 0; i < b.size(); i++) { b[i] = __float2bfloat16(rnd()); bf[i] = __bfloat162float(b[i]); }
  std::vector<double> ref(64 * 128, 0.0);
  for (int r = 0; r < 64; r++)
    for (int c = 0; c < 128; c++)
      for (int k = 0; k < 16; k++) ref[r * 128 + c] += (double)af[r * 16 + k] * bf[c * 16 + k];
  __nv_bfloat16 *da, *db;
  float* dout;
  cudaMalloc(&da, a.size() * 2);
  cudaMalloc(&db, b.size() * 2);
  cudaMalloc(&dout, ref.size() * 4);
  cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice);
  const char* names[8] = {"SS assumed LBO/SBO", "SS LBO and SBO exchanged", "RS (A from registers)",
                          "SS 128-byte swizzle, k16 step 1", "RS 128-byte swizzle, k16 step 1",
                          "RS, B MN-major swizzled (wgDescMn as assumed)", "RS, B MN-major, LBO and SBO exchanged",
                          "SS, A and B MN-major (wgDescMn)"};
  bool assumedOk = true;
  for (int form = 0; form < 8; form++) {
    cudaMemset(dout, 0xff, ref.size() * 4);
    probe<<<1, 128>>>(da, db, dout, form);
    cudaError_t err = cudaDeviceSynchronize();
    std::vector<float> got(ref.size());
    cudaMemcpy(got.data(), dout, ref.size() * 4, cudaMemcpyDeviceToHost);
    double maxAbs = 0;
    for (size_t i = 0; i < ref.size(); i++)
      maxAbs = std::fmax(maxAbs, std::isnan(got[i]) ? INFINITY : std::fabs(got[i] - ref[i]));
    const bool ok = err == cudaSuccess && maxAbs < 1e-3;
    std::printf("wgmma %s: %s maxAbs=%.3e %s\n", names[form], cudaGetErrorString(err), maxAbs, ok ? "ok" : "BAD");
    if (form != 1 && form != 6 && !ok) assumedOk = false;
  }
  return assumedOk ? 0 : 1;
}
