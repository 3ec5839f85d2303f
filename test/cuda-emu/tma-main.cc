// Self-test of test/cuda-emu/tma.cuh (the host emulation of native/src/tma.cuh) on its own, for test/tma-emu.test.ts:
// a 128-thread kernel in which thread 0 asks for boxes of a random tensor with padded strides, seen as bf16 (swizzled
// boxes: one inside it, one partly outside, zeros there) and as f32 (an unswizzled box, partly outside), counted
// against one mbarrier; every thread waits and reads its rows back through the layout formulas; then a second phase
// (parity 1) on the same barrier. Modes (argv[1]): data (prints "ok" or "fail" with the mismatches, and whether a box
// read before its phase completed showed data or the 0xff fill), named (two thread groups taking turns through named
// barriers), leftover (a block leaving a named-barrier arrival unconsumed), timeout (a barrier that never completes:
// every thread's wait gets the scheduler's deadlock report), stuck (a bar.sync and a __syncthreads that threads which
// returned never reach: the deadlock report, caught in the kernel and thrown out of the launch), misaligned
// (destinations off the 1024-byte swizzle atoms or the 128-byte plain alignment), unwaited (a block that leaves its
// copies unwaited, seen at the next block's mbarInit).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "common.cuh"
#include "kernel-shims.h"
#include "tma.cuh"

using namespace paro;

// The host tensor's bytes: byte strides of dimensions 1..3 padded past the extents below them, for either view.
constexpr uint64_t kStrides[3] = {176 * 2, 176 * 2 * 75, 176 * 2 * 75 * 3 + 32};
constexpr size_t kTensorBytes = kStrides[2] * 2;
static unsigned char* g_tensor = nullptr;

// One box request: element bytes (2: bf16, swizzled; 4: f32, plain), the view's dims (innermost first), the box's
// sizes and the coordinates of its first element.
struct Box {
  uint32_t eb;
  uint64_t dims[4];
  uint32_t size[4];
  int c[4];
  constexpr uint32_t bytes() const { return eb * size[0] * size[1] * size[2] * size[3]; }
};
constexpr uint64_t kDims16[4] = {150, 70, 3, 2}, kDims32[4] = {70, 70, 3, 2};
// 64 × 128, inside the tensor, rows over dimensions 1 and 2.
constexpr Box kBoxA{2, {150, 70, 3, 2}, {64, 64, 2, 1}, {16, 3, 1, 1}};
// 64 × 64, past dims[0] and dims[1], before dimension 3's 0.
constexpr Box kBoxB{2, {150, 70, 3, 2}, {64, 32, 1, 2}, {120, 50, 2, -1}};
// f32, 32 × 10, past dims[0], dims[1] and dims[3].
constexpr Box kBoxC{4, {70, 70, 3, 2}, {32, 5, 1, 2}, {50, 66, 2, 1}};
// Phase 1: A's map again, up to the last element of each dimension.
constexpr Box kBoxA2{2, {150, 70, 3, 2}, {64, 64, 2, 1}, {86, 6, 0, 0}};
constexpr uint32_t kAtA = 0, kAtB = kBoxA.bytes(), kAtC = kAtB + kBoxB.bytes(), kSmem = kAtC + kBoxC.bytes();

static uint64_t rngState = 7;
static uint32_t rnd() {
  rngState = rngState * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(rngState >> 32);
}

// Element e of box row r as the host tensor has it (0 outside the tensor), as bits.
static uint32_t expected(const Box& bx, int r, int e) {
  const int64_t i[4] = {e, r % bx.size[1], r / bx.size[1] % bx.size[2], r / (bx.size[1] * bx.size[2])};
  int64_t off = 0;
  for (int k = 0; k < 4; k++) {
    const int64_t x = bx.c[k] + i[k];
    if (x < 0 || x >= (int64_t)bx.dims[k]) return 0;
    off += k == 0 ? bx.eb * x : x * (int64_t)kStrides[k - 1];
  }
  uint32_t v = 0;
  std::memcpy(&v, g_tensor + off, bx.eb);
  return v;
}

// Element e of row r of a box that landed at shared byte offset at: bf16 swizzled, f32 rows one after another.
static uint32_t landed(const Box& bx, uint32_t at, int r, int e) {
  const uint32_t byte = bx.eb == 2 ? at + r * 128 + (((e * 2 / 16) ^ (r % 8)) * 16) + (e * 2) % 16
                                   : at + (r * bx.size[0] + e) * 4;
  uint32_t v = 0;
  std::memcpy(&v, reinterpret_cast<const char*>(g_smem) + byte, bx.eb);
  return v;
}

static std::atomic<int> g_bad{0}, g_caught{0};
static std::string g_seen, g_msg, g_firstBad;
static std::mutex g_msgMu;

static void countRow(const Box& bx, uint32_t at, int r, const char* name) {
  for (int e = 0; e < (int)bx.size[0]; e++) {
    const uint32_t want = expected(bx, r, e), got = landed(bx, at, r, e);
    if (want == got) continue;
    if (g_bad++ == 0) {
      std::lock_guard<std::mutex> lock(g_msgMu);
      g_firstBad = std::string(name) + " row " + std::to_string(r) + " elem " + std::to_string(e) + ": got " +
                   std::to_string(got) + " want " + std::to_string(want);
    }
  }
}

static void caught(const std::exception& x) {
  g_caught++;
  std::lock_guard<std::mutex> lock(g_msgMu);
  g_msg += (g_msg.empty() ? "" : " | ") + std::string(x.what());
}

static void load(const Box& bx, uint32_t at, const CUtensorMap* map, uint64_t* bar) {
  tmaLoad4(reinterpret_cast<char*>(g_smem) + at, map, bar, bx.c[0], bx.c[1], bx.c[2], bx.c[3]);
}

__global__ void dataKernel(const __grid_constant__ CUtensorMap mapA, const __grid_constant__ CUtensorMap mapB,
                           const __grid_constant__ CUtensorMap mapC) {
  __shared__ uint64_t bar;
  const int t = threadIdx.x;
  if (t == 0) {
    mbarInit(&bar, 2);
    mbarInitFence();
    tmaPrefetch(&mapA);
  }
  __syncthreads();
  mbarWait(&bar, 1);  // a fresh barrier's preceding phase (parity 1) counts as complete: returns at once
  __syncthreads();    // no thread may still be at that wait when phase 0 completes (it would then wait for phase 1)
  if (t == 0) {
    // A copy before the phase's arrivals: it cannot complete yet, so late copies have not landed.
    load(kBoxA, kAtA, &mapA, &bar);
    g_seen = landed(kBoxA, kAtA, 5, 7) == 0xffff && landed(kBoxA, kAtA, 100, 60) == 0xffff ? "fill" : "data";
    mbarExpectTx(&bar, kBoxA.bytes() + kBoxB.bytes() + kBoxC.bytes());
    load(kBoxB, kAtB, &mapB, &bar);
    load(kBoxC, kAtC, &mapC, &bar);
  }
  if (t == 32) mbarExpectTx(&bar, 0);  // the second arrival, no bytes
  mbarWait(&bar, 0);
  countRow(kBoxA, kAtA, t, "A");
  if (t < 64) countRow(kBoxB, kAtB, t, "B");
  if (t < 10) countRow(kBoxC, kAtC, t, "C");
  __syncthreads();  // everyone has read box A before its buffer is refilled
  if (t == 0) {
    mbarExpectTx(&bar, kBoxA2.bytes());
    load(kBoxA2, kAtA, &mapA, &bar);
  }
  if (t == 32) mbarExpectTx(&bar, 0);
  mbarWait(&bar, 1);
  countRow(kBoxA2, kAtA, t, "A2");
}

// Two groups of 64 threads take 3 turns each, alternately, through named barriers 1 and 2 as version 4p's warpgroups:
// every log entry of turn k must come before any of turn k + 1. extra: group 1 arrives once more than group 0
// consumes, which the next block's first named-barrier call must report.
static std::vector<int> g_turns;
__global__ void namedKernel(int extra) {
  const int g = threadIdx.x / 64;
  try {
    if (g == 1) namedBarArrive(1, 128);  // group 0's first turn
    for (int k = 0; k < 3; k++) {
      namedBarSync(1 + g, 128);
      {
        std::lock_guard<std::mutex> lock(g_msgMu);
        g_turns.push_back(2 * k + g);
      }
      if (g == 0 || k < 2 || extra) namedBarArrive(2 - g, 128);
    }
  } catch (const std::exception& x) {
    caught(x);
  }
}

__global__ void timeoutKernel() {
  __shared__ uint64_t bar;
  if (threadIdx.x == 0) mbarInit(&bar, 1);
  __syncthreads();
  try {
    mbarWait(&bar, 0);  // no arrival ever comes
  } catch (const std::exception& x) {
    caught(x);
  }
}

__global__ void misalignedKernel(const __grid_constant__ CUtensorMap mapA, const __grid_constant__ CUtensorMap mapC) {
  __shared__ uint64_t bar;
  if (threadIdx.x != 0) return;
  mbarInit(&bar, 1);
  try {
    load(kBoxA, 512, &mapA, &bar);
  } catch (const std::exception& x) {
    caught(x);
  }
  try {
    load(kBoxC, 64, &mapC, &bar);
  } catch (const std::exception& x) {
    caught(x);
  }
}

// Each block issues a copy and returns without waiting for it: the second block's mbarInit must object.
__global__ void unwaitedKernel(const __grid_constant__ CUtensorMap mapA) {
  __shared__ uint64_t bar;
  if (threadIdx.x != 0) return;
  try {
    mbarInit(&bar, 1);
  } catch (const std::exception& x) {
    caught(x);
    return;
  }
  mbarExpectTx(&bar, kBoxA.bytes());
  load(kBoxA, 0, &mapA, &bar);
}

// Threads 64..127 return at once: the others' bar.sync for 128 threads never completes (each catches the report).
__global__ void stuckNamedKernel() {
  if (threadIdx.x >= 64) return;
  try {
    namedBarSync(3, 128);
  } catch (const std::exception& x) {
    caught(x);
  }
}

// Thread 0 returns at once: the others' __syncthreads never completes; uncaught, the report leaves the launch.
__global__ void stuckSyncKernel() {
  if (threadIdx.x == 0) return;
  __syncthreads();
}

static CUtensorMap makeMap(const Box& bx) {
  CUtensorMap m;
  const uint64_t dims[4] = {bx.dims[0], bx.dims[1], bx.dims[2], bx.dims[3]};
  const uint64_t strides[3] = {kStrides[0], kStrides[1], kStrides[2]};
  const uint32_t box[4] = {bx.size[0], bx.size[1], bx.size[2], bx.size[3]};
  const bool made =
      bx.eb == 2 ? tmaMapBf16(&m, g_tensor, dims, strides, box) : tmaMapF32(&m, g_tensor, dims, strides, box);
  if (!made) throw std::runtime_error("a valid map refused");
  return m;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tma-main data|named|leftover|timeout|stuck|misaligned|unwaited\n");
    return 2;
  }
  const std::string mode = argv[1];
  g_tensor = static_cast<unsigned char*>(std::aligned_alloc(64, (kTensorBytes + 63) / 64 * 64));
  // Random finite values in both views (f nonzero: an odd multiple of 2^-23): no element reads as 0 or 0xffff.
  for (size_t i = 0; i < kTensorBytes / 4; i++) {
    const float f = (float)((rnd() >> 8) | 1) / 8388608.0f - 1.0f;
    const uint32_t bits = ((uint32_t)fToBf16(f) << 16) | fToBf16(f * 0.5f + 2.0f);
    std::memcpy(g_tensor + 4 * i, &bits, 4);
  }
  const CUtensorMap mapA = makeMap(kBoxA), mapB = makeMap(kBoxB), mapC = makeMap(kBoxC);
  if (mode == "data") {
    // The host checks: base 16-byte aligned, strides multiples of 16, a swizzled box row of at most 128 bytes.
    CUtensorMap m;
    const uint64_t dims[4] = {kDims16[0], kDims16[1], kDims16[2], kDims16[3]};
    const uint64_t dims32[4] = {kDims32[0], kDims32[1], kDims32[2], kDims32[3]};
    const uint64_t strides[3] = {kStrides[0], kStrides[1], kStrides[2]};
    const uint64_t oddStrides[3] = {kStrides[0] + 8, kStrides[1], kStrides[2]};
    const uint32_t box[4] = {64, 64, 2, 1}, wideBox[4] = {128, 8, 1, 1}, box32[4] = {32, 5, 1, 2};
    const bool refused = !tmaMapBf16(&m, g_tensor + 2, dims, strides, box) &&
                         !tmaMapBf16(&m, g_tensor, dims, oddStrides, box) &&
                         !tmaMapBf16(&m, g_tensor, dims, strides, wideBox) &&
                         !tmaMapF32(&m, g_tensor + 4, dims32, strides, box32);
    emuLaunch(dataKernel, dim3(1), dim3(128), kSmem)(mapA, mapB, mapC);
    if (g_bad == 0 && refused) std::printf("ok seen=%s\n", g_seen.c_str());
    else
      std::printf("fail bad=%d refused=%d seen=%s first: %s\n", g_bad.load(), refused ? 1 : 0, g_seen.c_str(),
                  g_firstBad.c_str());
  } else if (mode == "named") {
    emuLaunch(namedKernel, dim3(2), dim3(128), 0)(0);
    bool inOrder = g_turns.size() == 2 * 6 * 64;
    for (size_t i = 1; i < g_turns.size(); i++) {
      const int prev = g_turns[i - 1], cur = g_turns[i];
      inOrder = inOrder && (cur == prev || cur == (prev + 1) % 6);  // block 1's turn 0 follows block 0's turn 5
    }
    std::printf("%s caught=%d\n", inOrder ? "ok" : "fail", g_caught.load());
  } else if (mode == "leftover") {
    emuLaunch(namedKernel, dim3(2), dim3(128), 0)(1);
    std::printf("caught=%d msg=%s\n", g_caught.load(), g_msg.substr(0, g_msg.find(" | ")).c_str());
  } else if (mode == "timeout") {
    emuLaunch(timeoutKernel, dim3(1), dim3(128), 0)();
    std::printf("caught=%d msg=%s\n", g_caught.load(), g_msg.substr(0, g_msg.find(" | ")).c_str());
  } else if (mode == "stuck") {
    emuLaunch(stuckNamedKernel, dim3(1), dim3(128), 0)();
    std::string threw = "nothing";
    try {
      emuLaunch(stuckSyncKernel, dim3(1), dim3(64), 0)();
    } catch (const std::exception& x) {
      threw = x.what();
    }
    std::printf("caught=%d msg=%s threw=%s\n", g_caught.load(), g_msg.substr(0, g_msg.find(" | ")).c_str(),
                threw.c_str());
  } else if (mode == "misaligned") {
    emuLaunch(misalignedKernel, dim3(1), dim3(32), kSmem + 1024)(mapA, mapC);
    std::printf("caught=%d msg=%s\n", g_caught.load(), g_msg.c_str());
  } else if (mode == "unwaited") {
    emuLaunch(unwaitedKernel, dim3(2), dim3(32), kBoxA.bytes())(mapA);
    std::printf("caught=%d msg=%s\n", g_caught.load(), g_msg.c_str());
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::free(g_tensor);
  return 0;
}
