// Host emulation of native/src/common.cuh, for running CUDA kernel sources on the cpu in tests (test/paro-fused-reference
// .test.ts and the other *-emu tests). Blocks run one after another; the threads of a block run as cooperative
// user-space fibers on the launching OS thread (one fiber per CUDA thread, each on its own mmap'd stack, kept for the
// next block; switched by a few instructions on x86-64, by ucontext's swapcontext elsewhere). A fiber runs until it
// must wait (__syncthreads, __syncwarp, a shuffle or vote, tma.cuh's named barriers and mbarriers) and then yields to
// the scheduler below, which resumes it once its condition holds. Shuffles exchange through a per-block array, shared
// memory is one host array, bf16 stored round-to-nearest-even.
//
// Scheduling, to show a missing barrier where OS threads did only by chance: in rounds, each taking the warps in a
// shuffled order and their lanes, warp by warp, in a shuffled order too, every lane resumed until its next wait. The
// rounds alternate: in one, a warp is run until none of its lanes can go on before the next warp starts, so the first
// warps run a whole stretch between block-wide synchronisations ahead of the others (without its __syncthreads, a warp
// reads shared memory another has not written yet or has already overwritten with its next tile); in the next, each
// lane is resumed once, so the warps go on side by side, one wait at a time (one warp sees another's partial writes).
// Within a warp, a missing __syncwarp shows the same way between lanes. The shuffles put each warp and lane both
// before and after the others over the rounds; they come from a fixed-seed generator, so a run is repeatable
// (EMU_SCHED_SEED=n picks another seed).
// Deadlock: a round in which no fiber could be resumed (every live one waits, no condition holds) can never be followed
// by progress, since only the fibers change the state the conditions read. Every waiting fiber is then resumed with its
// wait failed, and the wait throws an "emu: ... deadlocked" error in that thread (a kernel may catch it, as
// test/cuda-emu/tma-main.cc's timeout mode does).
// Exceptions: one that leaves a thread's kernel (or afterThread) is caught at the bottom of its fiber (never carried
// across a context switch); the block then stops (its other fibers are abandoned where they wait: their stack objects
// are not destroyed) and emuLaunch rethrows it, so an uncaught one ends the program with its message as before.
// Per-thread state of the emulation headers (what thread_local gave with a std::thread per CUDA thread) is EmuLocal:
// a slot per thread of the block, fresh for each block.
// Launches are rewritten by the test: kernel<<<grid, block, smem, stream()>>>(args) → emuLaunch(kernel, grid, block, smem)(args).
#pragma once
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
// threadIdx: set by the scheduler each time it resumes a fiber (all fibers share one OS thread); blockIdx per block.
inline dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline float g_smem[256 * 1024 / 4];

// ---- fibers ----
namespace emu {

// The C++ runtime's per-OS-thread exception state (Itanium C++ ABI __cxa_eh_globals: the exceptions being handled, the
// count of those in flight). The fibers share one OS thread, so each keeps its own copy, swapped in when it is resumed:
// a thread that waits inside a catch block must not end another thread's exception.
struct EhGlobals {
  void* caughtExceptions;
  unsigned int uncaughtExceptions;
};
inline EhGlobals* ehGlobals() { return reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals()); }

// Stacks: generous, as the kernels keep their register fragments in arrays on the stack; MAP_NORESERVE, so only the
// pages a fiber touches cost memory. A PROT_NONE page below each stack turns an overflow into a fault.
constexpr size_t kStackBytes = size_t(1) << 20;

// A suspended execution and the switch between two. glibc's swapcontext also saves and restores the signal mask, a
// system call each way (microseconds in a VM, and the emulation switches a few times per barrier per thread), so on
// x86-64 the switch is the few instructions below; elsewhere (or with -DEMU_FIBER_UCONTEXT) it is ucontext's.
#if defined(__x86_64__) && !defined(EMU_FIBER_UCONTEXT)
struct Context {
  void* sp = nullptr;  // the stack pointer, with the callee-saved registers pushed below the resume address
};
// Pushes the registers the SysV ABI makes the callee preserve (rbp, rbx, r12–r15, MXCSR and the x87 control word),
// stores the stack pointer in *from (rdi), loads `to` (rsi) and pops what was pushed there the same way; `ret` resumes
// there. Naked: the body is all of the function, the parameters are only named in the registers the ABI passes them in.
// noipa: GCC must treat it as an ordinary call that may change every caller-saved register (its -fipa-ra would read
// the asm, which names no clobbers, as changing none, though another fiber runs before it returns).
#if defined(__clang__)
__attribute__((naked, noinline))
#else
__attribute__((naked, noipa))
#endif
inline void switchStacks(void** /* from */, void* /* to */) {
  asm volatile(
      "pushq %rbp\n\t"
      "pushq %rbx\n\t"
      "pushq %r12\n\t"
      "pushq %r13\n\t"
      "pushq %r14\n\t"
      "pushq %r15\n\t"
      "subq $8, %rsp\n\t"
      "stmxcsr (%rsp)\n\t"
      "fnstcw 4(%rsp)\n\t"
      "movq %rsp, (%rdi)\n\t"
      "movq %rsi, %rsp\n\t"
      "ldmxcsr (%rsp)\n\t"
      "fldcw 4(%rsp)\n\t"
      "addq $8, %rsp\n\t"
      "popq %r15\n\t"
      "popq %r14\n\t"
      "popq %r13\n\t"
      "popq %r12\n\t"
      "popq %rbx\n\t"
      "popq %rbp\n\t"
      "ret\n\t");
}
inline void switchContext(Context& from, const Context& to) { switchStacks(&from.sp, to.sp); }
// A stack whose first switchStacks "returns" into entry as if entry had been called (rsp ≡ 8 mod 16 there, a null
// return address above it: entry never returns), with zero registers and the current MXCSR and x87 control word.
inline void makeContext(Context& c, char* stack, size_t bytes, void (*entry)()) {
  uint64_t* sp = reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t(15));
  *--sp = 0;
  *--sp = reinterpret_cast<uint64_t>(entry);
  for (int i = 0; i < 6; i++) *--sp = 0;
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  *--sp = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
  c.sp = sp;
}
#else
struct Context {
  ucontext_t uc;  // glibc points into the struct itself: a Context never moves
};
inline void switchContext(Context& from, const Context& to) { swapcontext(&from.uc, &to.uc); }
inline void makeContext(Context& c, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

struct Fiber {
  Context ctx;  // while suspended (a Fiber never moves)
  char* stack = nullptr;
  unsigned tid = 0;
  bool done = false;
  // While waiting: the condition that releases it, evaluated by the scheduler on its own stack (reading the waiting
  // fiber's frame, which stays intact while it is suspended), so a fiber is resumed only to proceed.
  bool (*ready)(const void*) = nullptr;
  const void* readyArg = nullptr;
  bool deadlocked = false;  // resumed because the block deadlocked, not because ready() held
  EhGlobals eh{};           // its exception state while suspended
};

struct Scheduler {
  std::vector<std::unique_ptr<Fiber>> fibers;  // grown to the largest block, reused by every block and launch
  Context main;                                // the launching thread while a fiber runs
  Fiber* current = nullptr;                    // the running fiber; null outside a block
  void (*body)(void*) = nullptr;               // what each fiber runs: the kernel, then afterThread
  void* bodyArg = nullptr;
  std::exception_ptr error;  // the first exception that left a fiber
  uint64_t rng = 0;
  std::vector<unsigned> order;  // the warps in this round's order
};
inline Scheduler g_sched;

inline std::unique_ptr<Fiber> newFiber() {
  auto f = std::make_unique<Fiber>();
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  void* m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (m == MAP_FAILED) throw std::runtime_error("emu: mmap of a fiber stack failed");
  if (mprotect(m, page, PROT_NONE) != 0) throw std::runtime_error("emu: mprotect of a fiber's guard page failed");
  f->stack = static_cast<char*>(m) + page;
  return f;
}

// Each fiber's first frame: runs the block's body; an exception stops here (it must not unwind across a context
// switch) and goes to the scheduler, which stops the block. Never returns: the finished fiber switches back for good.
inline void fiberEntry() {
  Scheduler& s = g_sched;
  Fiber* f = s.current;
  try {
    s.body(s.bodyArg);
  } catch (...) {
    if (!s.error) s.error = std::current_exception();
  }
  f->done = true;
  switchContext(f->ctx, s.main);
  std::abort();  // a finished fiber is never resumed
}

// Runs fiber f until it waits or finishes, as thread f.tid with its own exception state.
inline void resume(Fiber& f) {
  Scheduler& s = g_sched;
  EhGlobals* eh = ehGlobals();
  const EhGlobals launcher = *eh;
  *eh = f.eh;
  s.current = &f;
  threadIdx = dim3(f.tid);
  switchContext(s.main, f.ctx);
  s.current = nullptr;
  f.eh = *eh;
  *eh = launcher;
}

// Suspends the calling emulated thread until ready() holds. True then; false if the block deadlocked first (every live
// thread waiting, none releasable) and ready() still does not hold: the caller throws its own report.
template <typename P>
inline bool waitUntil(const P& ready) {
  if (ready()) return true;  // e.g. the last arrival at a barrier: it goes on without a switch
  Fiber* f = g_sched.current;
  if (f == nullptr) throw std::logic_error("emu: a wait outside a kernel");
  f->ready = [](const void* p) { return (*static_cast<const P*>(p))(); };
  f->readyArg = &ready;
  switchContext(f->ctx, g_sched.main);
  f->ready = nullptr;
  if (!f->deadlocked) return true;
  f->deadlocked = false;
  return ready();  // another thread's reaction to the deadlock may have released this wait meanwhile
}

// Shuffles order[0..n) (Fisher–Yates with xorshift64*: deterministic, the generator seeded once per process).
inline void shuffle(unsigned* order, size_t n, uint64_t& rng) {
  for (size_t i = n; i > 1; i--) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    const size_t j = (size_t)((rng * 0x2545F4914F6CDD1Dull) >> 33) % i;
    std::swap(order[i - 1], order[j]);
  }
}

// Runs one block of `threads` fibers, each calling body(arg), until all have returned; rethrows the first exception
// that left one (the others are abandoned where they are). Rounds (see the header comment): the warps in a shuffled
// order, each given passes over its lanes in a shuffled order, every lane resumed until its next wait; a warp gets
// passes until none of its lanes can go on in even rounds ("greedy"), one pass in odd ones.
inline void runBlock(unsigned threads, void (*body)(void*), void* arg) {
  Scheduler& s = g_sched;
  if (s.current != nullptr) throw std::logic_error("emu: a launch from inside a kernel");
  if (s.rng == 0) {
    const char* e = std::getenv("EMU_SCHED_SEED");
    s.rng = 0x9E3779B97F4A7C15ull ^ (e != nullptr ? std::strtoull(e, nullptr, 10) : 0);
    if (s.rng == 0) s.rng = 1;  // xorshift stays at 0
  }
  while (s.fibers.size() < threads) s.fibers.push_back(newFiber());
  s.body = body;
  s.bodyArg = arg;
  s.error = nullptr;
  for (unsigned t = 0; t < threads; t++) {
    Fiber& f = *s.fibers[t];
    f.tid = t;
    f.done = false;
    f.ready = nullptr;
    f.deadlocked = false;
    f.eh = {};
    makeContext(f.ctx, f.stack, kStackBytes, fiberEntry);
  }
  const unsigned warps = (threads + 31) / 32;
  s.order.resize(warps);
  for (unsigned w = 0; w < warps; w++) s.order[w] = w;
  unsigned live = threads;
  for (uint64_t round = 0; live > 0; round++) {
    const bool greedy = round % 2 == 0;  // a warp runs ahead of the others, or they go on side by side
    bool progressed = false;
    shuffle(s.order.data(), warps, s.rng);
    for (unsigned w : s.order) {
      const unsigned lanes = std::min(32u, threads - 32 * w);
      unsigned lane[32];
      for (unsigned l = 0; l < lanes; l++) lane[l] = 32 * w + l;
      shuffle(lane, lanes, s.rng);
      for (bool warpMoved = true; warpMoved;) {
        warpMoved = false;
        for (unsigned l = 0; l < lanes; l++) {
          Fiber& f = *s.fibers[lane[l]];
          if (f.done || (f.ready != nullptr && !f.deadlocked && !f.ready(f.readyArg))) continue;
          warpMoved = progressed = true;
          resume(f);
          if (s.error) {
            std::exception_ptr x = s.error;
            s.error = nullptr;
            std::rethrow_exception(x);
          }
          if (f.done) live--;
        }
        if (!greedy) break;
      }
    }
    // No fiber could go on and none ever will: fail every wait (each thread reports its own).
    if (!progressed)
      for (unsigned t = 0; t < threads; t++)
        if (!s.fibers[t]->done) s.fibers[t]->deadlocked = true;
  }
}

}  // namespace emu

// The emulation headers' per-thread state: one T per thread of the block (picked by threadIdx.x), value-initialised
// again before every block, as a new std::thread's thread_local was.
struct EmuLocalBase {
  virtual void reset(unsigned threads) = 0;

 protected:
  ~EmuLocalBase() = default;
};
inline std::vector<EmuLocalBase*>& emuLocals() {
  static std::vector<EmuLocalBase*> all;
  return all;
}
template <typename T>
struct EmuLocal final : EmuLocalBase {
  std::vector<T> slots;
  EmuLocal() { emuLocals().push_back(this); }
  EmuLocal(const EmuLocal&) = delete;
  void reset(unsigned threads) override { slots.assign(threads, T{}); }
  T& operator*() { return slots[threadIdx.x]; }
  T* operator->() { return &slots[threadIdx.x]; }
};

// A block-wide or warp-wide barrier: the last of `count` arrivals starts the next generation and goes on; the others
// wait for the generation to change.
struct EmuBarrier {
  unsigned count = 0, arrived = 0;
  uint64_t gen = 0;
};
struct BlockSync {
  EmuBarrier block;
  std::vector<EmuBarrier> warps;
  std::vector<double> xchg;  // [threads]
};
inline BlockSync g_sync;

// what (and warp ≥ 0: its warp): the barrier's name in the deadlock report, built only then.
inline void emuBarrierWait(EmuBarrier& b, const char* what, int warp = -1) {
  const uint64_t gen = b.gen;
  if (++b.arrived == b.count) {
    b.arrived = 0;
    b.gen++;
    return;
  }
  if (emu::waitUntil([&] { return b.gen != gen; })) return;
  throw std::runtime_error("emu: " + std::string(what) + (warp >= 0 ? " of warp " + std::to_string(warp) : "") +
                           " deadlocked in block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) +
                           "," + std::to_string(blockIdx.z) + "), thread " + std::to_string(threadIdx.x) + ": " +
                           std::to_string(b.arrived) + " of " + std::to_string(b.count) +
                           " threads arrived, the others returned or wait elsewhere");
}

inline void __syncthreads() { emuBarrierWait(g_sync.block, "__syncthreads"); }
inline void __syncwarp(unsigned = 0xffffffffu) {
  emuBarrierWait(g_sync.warps[threadIdx.x / 32], "__syncwarp", (int)(threadIdx.x / 32));
}

template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int o) {
  int t = threadIdx.x, w0 = t - t % 32;
  g_sync.xchg[t] = (double)v;
  __syncwarp();
  T r = (T)g_sync.xchg[w0 + ((t % 32) ^ o)];
  __syncwarp();
  return r;
}

using std::max;
using std::min;
typedef int cudaError_t;
typedef void* cudaStream_t;
enum { cudaFuncAttributeMaxDynamicSharedMemorySize = 0 };
inline int cudaFuncSetAttribute(const void*, int, int) { return 0; }

namespace paro {
enum DType : int { DT_F32 = 0, DT_BF16 = 1, DT_F16 = 2, DT_I32 = 3 };
struct CudaError : std::runtime_error { using std::runtime_error::runtime_error; };
struct ArgError : std::runtime_error { using std::runtime_error::runtime_error; };
inline cudaStream_t stream() { return nullptr; }
inline void checkLaunch(const char*) {}
inline void checkCuda(cudaError_t, const char*) {}
inline void* devAlloc(size_t b) { return std::calloc(b ? b : 1, 1); }
inline void devFree(void* p) { std::free(p); }
struct Scratch {
  void* p = nullptr;
  explicit Scratch(size_t bytes) : p(bytes ? devAlloc(bytes) : nullptr) {}
  ~Scratch() { if (p) devFree(p); }
  template <typename T> T* as() const { return static_cast<T*>(p); }
};
inline unsigned gridFor(size_t n, int block) { size_t w = (n + block - 1) / block; return (unsigned)std::min<size_t>(std::max<size_t>(w, 1), 64); }

inline float bf16ToF(uint16_t b) { uint32_t u = (uint32_t)b << 16; float f; std::memcpy(&f, &u, 4); return f; }
inline uint16_t fToBf16(float f) { uint32_t u; std::memcpy(&u, &f, 4); if (std::isnan(f)) return 0x7fc0; u += 0x7fff + ((u >> 16) & 1); return (uint16_t)(u >> 16); }

inline float ldf(const void* p, int dt, size_t i) {
  if (dt == DT_BF16) return bf16ToF(static_cast<const uint16_t*>(p)[i]);
  if (dt == DT_F32) return static_cast<const float*>(p)[i];
  throw std::runtime_error("emu: dtype");
}
inline void stf(void* p, int dt, size_t i, float v) {
  if (dt == DT_BF16) static_cast<uint16_t*>(p)[i] = fToBf16(v);
  else if (dt == DT_F32) static_cast<float*>(p)[i] = v;
  else throw std::runtime_error("emu: dtype");
}
inline float warpSum(float v) { for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o); return v; }
inline float warpMax(float v) { for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o)); return v; }
inline float warpMin(float v) { for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o)); return v; }
inline void fillK(void* dst, int dt, size_t n, float value) { for (size_t i = 0; i < n; i++) stf(dst, dt, i, value); }

// kernel<<<grid, block, smem, stream>>>(args) → emuLaunch(kernel, grid, block, smem)(args): the blocks of the grid
// (x, y, z) one after another, each as block.x fibers. reserve: bytes g_smem must hold beyond smem (a caller's margin);
// afterThread runs in each thread once the kernel returned (attention-emu.cuh checks that no cp.async was left pending).
template <typename K>
auto emuLaunch(K kernel, dim3 grid, dim3 block, size_t smem, size_t reserve = 0,
               std::function<void()> afterThread = {}) {
  return [=](auto... args) {
    if (smem + reserve > sizeof(g_smem)) throw std::runtime_error("emu: shared memory " + std::to_string(smem));
    gridDim = grid;
    blockDim = block;
    for (unsigned bz = 0; bz < grid.z; bz++) {
      for (unsigned by = 0; by < grid.y; by++) {
        for (unsigned bx = 0; bx < grid.x; bx++) {
          std::memset(g_smem, 0xff, sizeof(g_smem));  // garbage (bf16 NaN), as on the device
          g_sync.block = EmuBarrier{block.x};
          g_sync.warps.assign((block.x + 31) / 32, EmuBarrier{32});
          g_sync.xchg.assign(block.x, 0.0);
          for (EmuLocalBase* l : emuLocals()) l->reset(block.x);
          blockIdx = dim3(bx, by, bz);
          // Each thread's call copies the arguments into its own kernel parameters, as each std::thread did.
          auto runThread = [&]() {
            kernel(args...);
            if (afterThread) afterThread();
          };
          emu::runBlock(block.x, [](void* p) { (*static_cast<decltype(runThread)*>(p))(); }, &runThread);
        }
      }
    }
  };
}
}  // namespace paro
