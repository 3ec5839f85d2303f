// native/src/k_gram.cu (Backend.groupGram) under the host emulation (test/cuda-emu/gram-emu.h), through its host entry,
// for test/group-gram-emu.test.ts. Usage: gram-main DIR O I gs adt bdt hasAlpha rowsPerChunk shift
// DIR holds a.bin and b.bin (O·I elements in the storage of dtype codes adt, bdt) and, with hasAlpha, alpha.bin (I
// f32). rowsPerChunk 0: the kernel's own choice (gramRowsPerChunk). shift > 0 misaligns a and b by that many
// elements (the kernel's scalar-load path). The op runs twice; out1.bin and out2.bin (f32 [gs, I]) are the two
// results. Every operand sits between guard bytes and the output starts as NaN: a write out of bounds fails the
// run, an element never written comes back NaN. Prints "rowsPerChunk R chunks C vec V".
#include <cstdio>
#include <string>
#include <vector>

#include "common.cuh"
#include "files.h"
#include "ops.h"

namespace {

constexpr size_t kGuard = 64;
constexpr uint8_t kGuardByte = 0xa7;

/** bytes of device memory at a 64-byte aligned address + shift bytes, guarded on both sides. */
struct Guarded {
  std::vector<uint8_t> mem;
  uint8_t* p;
  size_t bytes;
  Guarded(size_t n, size_t shift) : bytes(n) {
    mem.assign(n + 2 * kGuard + 64 + shift, kGuardByte);
    uintptr_t a = reinterpret_cast<uintptr_t>(mem.data());
    p = mem.data() + ((64 - a % 64) % 64) + kGuard + shift;
  }
  void check(const char* name) const {
    for (const uint8_t* q = mem.data(); q < mem.data() + mem.size(); q++) {
      if (q >= p && q < p + bytes) continue;
      if (*q != kGuardByte) {
        std::fprintf(stderr, "%s: byte %td outside the operand was written\n", name, q - p);
        std::exit(3);
      }
    }
  }
};

size_t elemSize(int dt) { return dt == paro::DT_F32 ? 4 : 2; }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 10) {
    std::fprintf(stderr, "usage: gram-main DIR O I gs adt bdt hasAlpha rowsPerChunk shift\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int O = std::atoi(argv[2]), I = std::atoi(argv[3]), gs = std::atoi(argv[4]);
  const int adt = std::atoi(argv[5]), bdt = std::atoi(argv[6]);
  const bool hasAlpha = std::atoi(argv[7]) != 0;
  const int rowsArg = std::atoi(argv[8]);
  const size_t shift = (size_t)std::atoi(argv[9]);
  const size_t n = (size_t)O * I;
  Guarded a(n * elemSize(adt), shift * elemSize(adt)), b(n * elemSize(bdt), shift * elemSize(bdt));
  const std::vector<uint8_t> ha = readFile<uint8_t>(dir + "/a.bin", a.bytes), hb = readFile<uint8_t>(dir + "/b.bin", b.bytes);
  std::memcpy(a.p, ha.data(), a.bytes);
  std::memcpy(b.p, hb.data(), b.bytes);
  Guarded al(hasAlpha ? (size_t)I * 4 : 0, 0);
  if (hasAlpha) {
    const std::vector<uint8_t> h = readFile<uint8_t>(dir + "/alpha.bin", al.bytes);
    std::memcpy(al.p, h.data(), al.bytes);
  }
  const int rows = rowsArg > 0 ? rowsArg : paro::gramRowsPerChunk(O, I, gs);
  std::printf("rowsPerChunk %d chunks %d vec %d\n", rows, (O + rows - 1) / rows,
              paro::vec8Ok((size_t)I, {a.p, b.p}) ? 1 : 0);
  for (int run = 1; run <= 2; run++) {
    Guarded out((size_t)gs * I * 4, 0);
    std::memset(out.p, 0xff, out.bytes);  // NaN
    const float* alpha = hasAlpha ? reinterpret_cast<const float*>(al.p) : nullptr;
    float* o = reinterpret_cast<float*>(out.p);
    if (rowsArg > 0) paro::groupGramChunkedK(a.p, adt, b.p, bdt, alpha, o, O, I, gs, rowsArg);
    else paro::groupGramK(a.p, adt, b.p, bdt, alpha, o, O, I, gs);
    a.check("a");
    b.check("b");
    al.check("alpha");
    out.check("out");
    writeFile(dir + "/out" + std::to_string(run) + ".bin", std::vector<float>(o, o + (size_t)gs * I));
  }
  return 0;
}
