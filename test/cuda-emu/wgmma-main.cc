// Self-test of test/cuda-emu/wgmma.cuh's shared-memory operand forms, for test/wgmma-emu.test.ts: one warpgroup
// computes D (64 × 128) = A (64 × 16) · Bᵀ (128 × 16) through wgmmaSS<kTransA, kTransB> with each operand stored
// K-major or MN-major in 128-byte swizzle atoms, written by the layout formulas of native/tools/wgmma-probe.cu
// (swizzledOffset, mnOffset: the layouts that probe checks on a device; form 7 there is both operands MN-major), and
// compared with a double product. Prints one line per form: "<tA><tB> maxAbs=<e> ok|BAD"; exit 1 if any is BAD.
#include <cmath>
#include <cstdio>
#include <vector>

#include "common.cuh"
#include "attention-emu.cuh"
#include "wgmma.cuh"

using namespace paro;

// Byte offset of element (r, k), k < 16, of a K-major tile in 128-byte swizzle atoms (rows of 64 elements).
static uint32_t kMajorByte(int r, int k) { return (r / 8) * 1024 + (r % 8) * 128 + (((k / 8) ^ (r % 8)) * 16) + (k % 8) * 2; }
// Byte offset of element (n, k), k < 16, of an MN-major tile (row k, n contiguous; atom columns of 64 n, 2048 bytes
// apart), swizzled.
static uint32_t mnMajorByte(int n, int k) {
  const uint32_t b = (n / 64) * 2048 + (k / 8) * 1024 + (k % 8) * 128 + (n % 64) * 2;
  return b ^ (((b >> 7) & 7) << 4);
}

static std::vector<float> g_a(64 * 16), g_b(128 * 16), g_d(64 * 128);
constexpr uint32_t kA = 0, kB = 16384;  // operand byte offsets in shared memory (1024-byte aligned)

template <int kTransA, int kTransB>
void product() {
  const int t = (int)threadIdx.x;
  unsigned char* sm = reinterpret_cast<unsigned char*>(g_smem);
  // Thread t writes rows t of A (t < 64) and B into their layouts; the rest of shared memory keeps the 0xff fill.
  if (t < 64)
    for (int k = 0; k < 16; k++)
      *reinterpret_cast<uint16_t*>(sm + kA + (kTransA ? mnMajorByte(t, k) : kMajorByte(t, k))) = fToBf16(g_a[t * 16 + k]);
  for (int k = 0; k < 16; k++)
    *reinterpret_cast<uint16_t*>(sm + kB + (kTransB ? mnMajorByte(t, k) : kMajorByte(t, k))) = fToBf16(g_b[t * 16 + k]);
  __syncthreads();
  const uint64_t da = kTransA ? wgDescMn(kA, 2048) : wgDesc(kA, 16, 1024, kWgSwizzle128);
  const uint64_t db = kTransB ? wgDescMn(kB, 2048) : wgDesc(kB, 16, 1024, kWgSwizzle128);
  float d[16][4];
  wgmmaSS<kTransA, kTransB>(d, da, db, 0);
  const int w = t / 32, lane = t % 32, g = lane / 4, q = lane % 4;
  for (int j = 0; j < 16; j++)
    for (int e = 0; e < 4; e++) g_d[(16 * w + g + 8 * (e / 2)) * 128 + 8 * j + 2 * q + e % 2] = d[j][e];
}

template <int kTransA, int kTransB>
bool check() {
  emuLaunch(product<kTransA, kTransB>, dim3(1), dim3(128), 0)();
  double maxAbs = 0;
  for (int r = 0; r < 64; r++) {
    for (int c = 0; c < 128; c++) {
      double s = 0;
      for (int k = 0; k < 16; k++) s += (double)bf16ToF(fToBf16(g_a[r * 16 + k])) * bf16ToF(fToBf16(g_b[c * 16 + k]));
      maxAbs = std::fmax(maxAbs, std::isnan(g_d[r * 128 + c]) ? INFINITY : std::fabs(g_d[r * 128 + c] - s));
    }
  }
  const bool ok = maxAbs < 1e-4;
  std::printf("%d%d maxAbs=%.3e %s\n", kTransA, kTransB, maxAbs, ok ? "ok" : "BAD");
  return ok;
}

int main() {
  unsigned s = 2026;
  auto rnd = [&]() { s = s * 1664525u + 1013904223u; return ((s >> 8) & 0xffff) / 32768.0f - 1.0f; };
  for (float& v : g_a) v = rnd();
  for (float& v : g_b) v = rnd();
  bool ok = check<0, 0>();
  ok = check<0, 1>() && ok;
  ok = check<1, 0>() && ok;
  ok = check<1, 1>() && ok;
  return ok ? 0 : 1;
}
