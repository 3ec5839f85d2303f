// Host emulation of native/src/tma.cuh (same names; found first on the emulation's include path), on top of
// test/cuda-emu/common.cuh (one fiber per CUDA thread, blocks one after another, dynamic shared memory on g_smem): the
// driver's tensor map as a plain description (base, dims, strides, box, element size, swizzle), the TMA box copy into
// the 128-byte swizzle layout or densely, with zeros outside the tensor, mbarriers with arrival and transaction-byte
// counts, and named barriers (bar.sync, bar.arrive), whose waits suspend the thread's fiber until the phase or round
// changes (common.cuh's emu::waitUntil). Copies land at issue or, with EMU_LATE_COPIES=1, as late as the device may
// land them: a phase with copies completes (and its copies land) only once a thread waits for it or the barrier's
// next phase begins, so a read before the wait sees the 0xff fill or the buffer's previous tile. A wait that can never
// return (the block deadlocked: every live thread waits and none can be released, common.cuh's scheduler) throws, so
// that a deadlocked kernel fails instead of hanging. No locks: the fibers share one OS thread and none is switched
// out inside these functions except at its wait. Also what the kernel file needs of <cuda.h>.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.cuh"

// Kernel parameters are per-thread copies here: the qualifier has nothing to do.
#define __grid_constant__

// ---- the parts of <cuda.h> that tma.cuh's host functions name ----
typedef uint32_t cuuint32_t;
typedef uint64_t cuuint64_t;
enum CUresult { CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1 };
enum CUtensorMapDataType { CU_TENSOR_MAP_DATA_TYPE_FLOAT32 = 7, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 = 9 };
enum CUtensorMapInterleave { CU_TENSOR_MAP_INTERLEAVE_NONE = 0 };
enum CUtensorMapSwizzle {
  CU_TENSOR_MAP_SWIZZLE_NONE = 0,
  CU_TENSOR_MAP_SWIZZLE_32B,
  CU_TENSOR_MAP_SWIZZLE_64B,
  CU_TENSOR_MAP_SWIZZLE_128B
};
enum CUtensorMapL2promotion {
  CU_TENSOR_MAP_L2_PROMOTION_NONE = 0,
  CU_TENSOR_MAP_L2_PROMOTION_L2_64B,
  CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
  CU_TENSOR_MAP_L2_PROMOTION_L2_256B
};
enum CUtensorMapFloatOOBfill { CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE = 0 };

// The driver's opaque 128-byte, 64-byte aligned map; here its fields are the emulation's own description.
struct alignas(64) CUtensorMap {
  const void* base;
  uint64_t dims[4];     // elements, innermost first
  uint64_t strides[3];  // bytes between steps of dimensions 1..3
  uint32_t box[4];      // elements per copy, innermost first
  uint32_t elemBytes;   // 2 (bf16) or 4 (f32)
  uint32_t swizzle128;  // 1: the 128-byte swizzle, 0: none (the box lands densely)
  uint32_t magic;       // kEmuTmaMagic once encoded: a map the host never made fails at its first copy
  unsigned char pad[128 - 8 - 32 - 24 - 16 - 12];
};
static_assert(sizeof(CUtensorMap) == 128 && alignof(CUtensorMap) == 64, "CUtensorMap is 128 bytes, 64-byte aligned");

namespace paro {
namespace {

constexpr uint32_t kEmuTmaMagic = 0x544d4150u;

inline uint32_t tmaSmem(const void* p) { return (uint32_t)((const char*)p - (const char*)g_smem); }

// One box copy: the map by value (the kernel's copy of its parameter dies with its thread), coordinates, destination.
struct EmuTmaBox {
  void* dst;
  CUtensorMap map;
  int64_t c[4];
};

// An mbarrier: `pending` arrivals and `tx` bytes (expected minus delivered) left in the current phase; `phase` counts
// completed phases (the current phase's parity is phase & 1); late copies wait in `queued` for the phase to complete.
struct EmuMbar {
  uint32_t count = 0, pending = 0;
  int64_t tx = 0;
  uint64_t phase = 0;
  std::vector<EmuTmaBox> queued;
  int copiesThisPhase = 0;
  int waiters = 0;              // threads waiting for the current phase
  bool unwaitedCopies = false;  // the last completed phase carried copies and no thread has waited for it yet
};

inline std::map<const void*, EmuMbar> g_mbars;

inline bool emuTmaLate() {
  const char* e = std::getenv("EMU_LATE_COPIES");
  return e != nullptr && e[0] == '1';
}

// The barrier's name in messages: its shared-memory offset when it lies in g_smem, else its host address (a static).
inline std::string emuMbarName(const void* bar) {
  const char* p = static_cast<const char*>(bar);
  const char* s = reinterpret_cast<const char*>(g_smem);
  char buf[96];
  if (p >= s && p < s + sizeof(g_smem)) std::snprintf(buf, sizeof buf, "mbarrier at shared offset %td", p - s);
  else std::snprintf(buf, sizeof buf, "mbarrier (static) at %p", bar);
  return buf;
}
inline std::string emuMbarState(const void* bar, const EmuMbar& b) {
  return emuMbarName(bar) + " (block " + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," +
         std::to_string(blockIdx.z) + "; phases completed " + std::to_string(b.phase) + ", arrivals pending " +
         std::to_string(b.pending) + " of " + std::to_string(b.count) + ", transaction bytes pending " +
         std::to_string(b.tx) + ")";
}

// The state of an initialised barrier.
inline EmuMbar& emuMbarFind(const void* bar) {
  auto it = g_mbars.find(bar);
  if (it == g_mbars.end() || it->second.count == 0)
    throw std::runtime_error("emu: " + emuMbarName(bar) + " used before mbarInit");
  return it->second;
}

// Writes one box into shared memory, row r (dimensions 1..3 flattened, 1 fastest) of box[0] elements after row r − 1
// or, with the 128-byte swizzle, at byte 128·r with its 16-byte chunk c at (c ^ r % 8)·16; elements outside the tensor
// are zeros.
inline void emuTmaCopy(const EmuTmaBox& x) {
  const CUtensorMap& m = x.map;
  const int64_t rows = (int64_t)m.box[1] * m.box[2] * m.box[3], eb = m.elemBytes, rowBytes = m.box[0] * eb;
  char* dst = static_cast<char*>(x.dst);
  const char* base = static_cast<const char*>(m.base);
  for (int64_t r = 0; r < rows; r++) {
    const int64_t i[4] = {0, r % m.box[1], r / m.box[1] % m.box[2], r / ((int64_t)m.box[1] * m.box[2])};
    bool rowIn = true;
    int64_t rowOff = 0;
    for (int k = 1; k < 4; k++) {
      const int64_t xk = x.c[k] + i[k];
      rowIn = rowIn && xk >= 0 && xk < (int64_t)m.dims[k];
      rowOff += xk * (int64_t)m.strides[k - 1];
    }
    for (int64_t e = 0; e < (int64_t)m.box[0]; e++) {
      const int64_t x0 = x.c[0] + e, at = e * eb;
      unsigned char v[4] = {0, 0, 0, 0};
      if (rowIn && x0 >= 0 && x0 < (int64_t)m.dims[0]) std::memcpy(v, base + rowOff + eb * x0, eb);
      const int64_t byte = m.swizzle128 ? 128 * r + (((at / 16) ^ (r % 8)) * 16) + at % 16 : rowBytes * r + at;
      std::memcpy(dst + byte, v, eb);
    }
  }
}

// Completes the current phase if its arrivals and bytes are all in: late copies land, then the waiters may go (the
// scheduler sees their phase change). Late copies are held back until `now` (a wait for the phase, or the next phase's
// first operation) or a thread already waits.
inline void emuMbarAdvance(const void* bar, EmuMbar& b, bool now) {
  if (b.pending != 0) return;
  if (b.tx < 0)
    throw std::runtime_error("emu: " + emuMbarState(bar, b) + ": more bytes landed than the phase expected");
  if (b.tx > 0) return;
  if (!now && !b.queued.empty() && b.waiters == 0) return;
  for (const EmuTmaBox& x : b.queued) emuTmaCopy(x);
  b.queued.clear();
  b.unwaitedCopies = b.copiesThisPhase > 0;
  b.copiesThisPhase = 0;
  b.phase++;
  b.pending = b.count;
}

inline void mbarInit(uint64_t* bar, int count) {
  if (reinterpret_cast<uintptr_t>(bar) % 8 != 0)
    throw std::runtime_error("emu: " + emuMbarName(bar) + " not 8-byte aligned");
  if (count < 1) throw std::runtime_error("emu: " + emuMbarName(bar) + " initialised with arrival count < 1");
  auto it = g_mbars.find(bar);
  // The statics outlive a block: a block that left copies in flight or unread would corrupt its successor's memory.
  if (it != g_mbars.end() && it->second.count != 0) {
    const EmuMbar& old = it->second;
    if (!old.queued.empty() || old.tx != 0 || old.copiesThisPhase > 0)
      throw std::runtime_error("emu: " + emuMbarState(bar, old) +
                               " re-initialised: the previous block left TMA copies (or expected bytes) it never"
                               " waited for");
    if (old.unwaitedCopies)
      throw std::runtime_error("emu: " + emuMbarState(bar, old) +
                               " re-initialised: the previous block never waited for its last copies");
  }
  EmuMbar fresh;
  fresh.count = fresh.pending = (uint32_t)count;
  g_mbars[bar] = fresh;
}

inline void mbarInitFence() {}

inline void mbarExpectTx(uint64_t* bar, uint32_t bytes) {
  EmuMbar& b = emuMbarFind(bar);
  emuMbarAdvance(bar, b, true);  // a phase held back for its late copies ends before this arrival of the next one
  if (b.pending == 0)
    throw std::runtime_error("emu: " + emuMbarState(bar, b) + ": an arrival beyond the count in one phase");
  b.tx += bytes;
  b.pending--;
  emuMbarAdvance(bar, b, false);
}

// As try_wait.parity in a loop: returns once the current phase's parity differs from `parity`. (g_mbars's nodes stay
// where they are while the thread waits: `b` is good until the barrier's next mbarInit.)
inline void mbarWait(uint64_t* bar, uint32_t parity) {
  EmuMbar& b = emuMbarFind(bar);
  if ((b.phase & 1) == (parity & 1)) emuMbarAdvance(bar, b, true);
  b.waiters++;
  const bool done = emu::waitUntil([&] { return (b.phase & 1) != (parity & 1); });
  b.waiters--;
  if (!done)
    throw std::runtime_error("emu: " + emuMbarState(bar, b) + ": a wait for parity " + std::to_string(parity & 1) +
                             " deadlocked (every live thread of the block waits, none can be released)");
  if (b.phase > 0) b.unwaitedCopies = false;
}

inline void tmaLoad4(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1, int c2, int c3) {
  if (map->magic != kEmuTmaMagic) throw std::runtime_error("emu: tmaLoad4 with a tensor map tmaMap4 did not make");
  if (map->swizzle128 && map->box[0] * map->elemBytes != 128)
    throw std::runtime_error("emu: tmaLoad4 box rows are not 128 bytes (the swizzle's)");
  const char* p = static_cast<const char*>(dst);
  const char* s = reinterpret_cast<const char*>(g_smem);
  const uint64_t bytes = (uint64_t)map->elemBytes * map->box[0] * map->box[1] * map->box[2] * map->box[3];
  if (p < s || p + bytes > s + sizeof(g_smem))
    throw std::runtime_error("emu: tmaLoad4 destination outside the dynamic shared memory");
  // The swizzle's pattern follows address bits 7–9: its atoms of 8 rows are 1024-byte aligned; a plain box 128.
  const uint32_t align = map->swizzle128 ? 1024 : 128;
  if (tmaSmem(dst) % align != 0)
    throw std::runtime_error("emu: tmaLoad4 destination at shared offset " + std::to_string(tmaSmem(dst)) + " not " +
                             std::to_string(align) + "-byte aligned" + (map->swizzle128 ? " (128-byte swizzle)" : ""));
  const EmuTmaBox x{dst, *map, {c0, c1, c2, c3}};
  const bool late = emuTmaLate();
  EmuMbar& b = emuMbarFind(bar);
  if (!late) emuTmaCopy(x);
  emuMbarAdvance(bar, b, true);  // a phase held back for its late copies ends before a copy of the next one
  if (late) b.queued.push_back(x);
  b.copiesThisPhase++;
  b.tx -= (int64_t)bytes;
  emuMbarAdvance(bar, b, false);
}

inline void tmaPrefetch(const CUtensorMap*) {}

// Named barriers 1..15: arrivals of bar.sync and bar.arrive (one per emulated thread) count towards `threads`; the
// last one starts the barrier's next round, which releases the waiting bar.sync threads.
struct EmuNamedBar {
  int count = 0, threads = 0;
  uint64_t round = 0;
  long block = -1;  // the block whose arrivals `count` holds
};
inline EmuNamedBar g_namedBars[16];

inline void emuNamedBar(int id, int threads, bool wait) {
  if (id < 1 || id > 15 || threads % 32 != 0 || threads <= 0 || threads > (int)blockDim.x)
    throw std::runtime_error("emu: named barrier " + std::to_string(id) + " with " + std::to_string(threads) +
                             " threads (ids 1..15, a multiple of 32 up to the block's)");
  const long block = ((long)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  EmuNamedBar& nb = g_namedBars[id];
  if (nb.block != block) {
    // The hardware's barriers start each block empty: arrivals a block left unconsumed mean a schedule gone wrong.
    if (nb.count != 0)
      throw std::runtime_error("emu: named barrier " + std::to_string(id) + ": block " + std::to_string(nb.block) +
                               " ended with " + std::to_string(nb.count) + " of " + std::to_string(nb.threads) +
                               " arrivals unconsumed");
    nb.block = block;
  }
  if (nb.count != 0 && nb.threads != threads)
    throw std::runtime_error("emu: named barrier " + std::to_string(id) + ": thread counts " +
                             std::to_string(nb.threads) + " and " + std::to_string(threads) + " in one round");
  nb.threads = threads;
  const uint64_t round = nb.round;
  if (++nb.count == threads) {
    nb.count = 0;
    nb.round++;
    return;
  }
  if (!wait) return;
  if (!emu::waitUntil([&] { return nb.round != round; }))
    throw std::runtime_error("emu: named barrier " + std::to_string(id) + " (block " + std::to_string(block) + ", " +
                             std::to_string(nb.count) + " of " + std::to_string(threads) +
                             " arrived): bar.sync deadlocked (every live thread of the block waits, none can be"
                             " released)");
}
inline void namedBarSync(int id, int threads) { emuNamedBar(id, threads, true); }
inline void namedBarArrive(int id, int threads) { emuNamedBar(id, threads, false); }

// ---- host ----
typedef CUresult (*TmaEncodeFn)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// cuTensorMapEncodeTiled's checks for the forms tmaLoad4 emulates (bf16 or f32, rank 4, unit element strides, the
// 128-byte swizzle or none, zero fill); the description goes into the map.
inline CUresult emuTensorMapEncodeTiled(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* base,
                                        const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box,
                                        const cuuint32_t* elemStrides, CUtensorMapInterleave il, CUtensorMapSwizzle sw,
                                        CUtensorMapL2promotion, CUtensorMapFloatOOBfill fill) {
  if ((type != CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 && type != CU_TENSOR_MAP_DATA_TYPE_FLOAT32) || rank != 4 ||
      il != CU_TENSOR_MAP_INTERLEAVE_NONE || (sw != CU_TENSOR_MAP_SWIZZLE_128B && sw != CU_TENSOR_MAP_SWIZZLE_NONE) ||
      fill != CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
    return CUDA_ERROR_INVALID_VALUE;
  const uint32_t eb = type == CU_TENSOR_MAP_DATA_TYPE_FLOAT32 ? 4 : 2;
  if (reinterpret_cast<uintptr_t>(base) % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
  for (int i = 0; i < 4; i++) {
    if (dims[i] == 0 || dims[i] > (1ull << 32) || box[i] == 0 || box[i] > 256 || elemStrides[i] != 1)
      return CUDA_ERROR_INVALID_VALUE;
  }
  for (int i = 0; i < 3; i++)
    if (strides[i] % 16 != 0 || strides[i] >= (1ull << 40)) return CUDA_ERROR_INVALID_VALUE;
  if (box[0] * eb % 16 != 0 || (sw == CU_TENSOR_MAP_SWIZZLE_128B && box[0] * eb > 128)) return CUDA_ERROR_INVALID_VALUE;
  std::memset(map, 0, sizeof(CUtensorMap));
  map->base = base;
  for (int i = 0; i < 4; i++) {
    map->dims[i] = dims[i];
    map->box[i] = box[i];
  }
  for (int i = 0; i < 3; i++) map->strides[i] = strides[i];
  map->elemBytes = eb;
  map->swizzle128 = sw == CU_TENSOR_MAP_SWIZZLE_128B ? 1 : 0;
  map->magic = kEmuTmaMagic;
  return CUDA_SUCCESS;
}

inline TmaEncodeFn tmaEncodeFn() { return &emuTensorMapEncodeTiled; }

}  // namespace
}  // namespace paro

// tmaMap4, tmaMapBf16, tmaMapF32: native/src/tma-map.h itself, on the emulated encoder above.
#include "tma-map.h"
