// RoPE, AdamW (native/src/k_elementwise.cu), RMSNorm forward/backward and SmoothL1 (native/src/k_reduce.cu) under the
// host emulation, through their host entries (ropeK, adamwK, rmsnormK, rmsnormBwdK, smoothL1K), so that the choice
// of the 8-wide or scalar kernel and of the lanes per row is the real one (test/elementwise-kernels-emu.test.ts).
// Inputs come as raw f32/i32 files from the test; they are stored in the operands' dtype (the test has already
// rounded bf16 inputs, so storing is exact), outputs go back as f32. Every operand sits between guard bytes and
// starts as NaN patterns: a write out of bounds makes the run fail, an element never written comes back NaN.
// After each launch a line "<op> w8 <accesses> w1 <accesses> grid <blocks>" tells the test which path ran.
#include <cstdio>
#include <string>
#include <vector>

#include "elementwise-emu.h"
#include "files.h"
#include "ops.h"

namespace {

using paro::DT_BF16;
using paro::DT_F32;

/** A device operand of n elements of dtype dt, misaligned by `shift` elements (which forces the scalar path). */
struct DevBuf {
  static constexpr size_t kGuard = 64;
  static constexpr uint8_t kGuardByte = 0xa7;
  std::vector<uint8_t> mem;
  uint8_t* p;
  size_t bytes;
  int dt;
  std::string name;

  DevBuf(std::string nm, int dtype, size_t n, size_t shift) : dt(dtype), name(std::move(nm)) {
    size_t es = paro::emuDtypeSize(dt);
    bytes = n * es;
    mem.assign(bytes + 2 * kGuard + 64 + shift * es, kGuardByte);
    uintptr_t a = reinterpret_cast<uintptr_t>(mem.data());
    p = mem.data() + ((64 - a % 64) % 64) + kGuard + shift * es;
    std::memset(p, 0xff, bytes);  // NaN in f32 and bf16
  }
  void fill(const std::vector<float>& v) {
    for (size_t i = 0; i < v.size(); i++) paro::stf(p, dt, i, v[i]);
  }
  std::vector<float> values() const {
    std::vector<float> v(bytes / paro::emuDtypeSize(dt));
    for (size_t i = 0; i < v.size(); i++) v[i] = paro::ldf(p, dt, i);
    return v;
  }
  void checkGuards() const {
    for (const uint8_t* q = mem.data(); q < mem.data() + mem.size(); q++) {
      if (q >= p && q < p + bytes) continue;
      if (*q != kGuardByte) {
        std::fprintf(stderr, "%s: byte %td outside the operand was written\n", name.c_str(), q - p);
        std::exit(3);
      }
    }
  }
};

void resetCounts() {
  paro::g_emuAccess8 = 0;
  paro::g_emuAccess1 = 0;
}
void report(const char* op) {
  std::printf("%s w8 %ld w1 %ld grid %u\n", op, paro::g_emuAccess8.load(), paro::g_emuAccess1.load(), gridDim.x);
}

// rope dir dt rows width headDim inverse inPlace shift smCount
int rope(char** a) {
  std::string dir = a[0];
  int dt = atoi(a[1]);
  size_t rows = (size_t)atol(a[2]);
  int width = atoi(a[3]), headDim = atoi(a[4]);
  bool inverse = atoi(a[5]) != 0, inPlace = atoi(a[6]) != 0;
  size_t shift = (size_t)atol(a[7]);
  paro::g_emuSmCount = atoi(a[8]);
  size_t n = rows * width;
  auto pos = readFile<int>(dir + "/pos", rows);
  auto invFreq = readFile<float>(dir + "/invFreq", headDim / 2);
  DevBuf x("x", dt, n, shift), out("out", dt, inPlace ? 0 : n, shift);
  x.fill(readFile<float>(dir + "/x", n));
  DevBuf& y = inPlace ? x : out;
  resetCounts();
  paro::ropeK(x.p, dt, y.p, dt, rows, width, pos.data(), invFreq.data(), headDim, inverse);
  report("rope");
  x.checkGuards();
  out.checkGuards();
  writeFile(dir + "/y", y.values());
  return 0;
}

// rmsnorm dir dt rows C eps shift
int rmsnorm(char** a) {
  std::string dir = a[0];
  int dt = atoi(a[1]);
  size_t rows = (size_t)atol(a[2]);
  int C = atoi(a[3]);
  float eps = (float)strtod(a[4], nullptr);
  size_t shift = (size_t)atol(a[5]);
  size_t n = rows * C;
  DevBuf x("x", dt, n, shift), w("w", dt, C, shift), y("y", dt, n, shift), dy("dy", dt, n, shift),
      dx("dx", dt, n, shift), rstd("rstd", DT_F32, rows, 0);
  x.fill(readFile<float>(dir + "/x", n));
  w.fill(readFile<float>(dir + "/w", C));
  dy.fill(readFile<float>(dir + "/dy", n));
  resetCounts();
  paro::rmsnormK(x.p, dt, w.p, dt, y.p, dt, (float*)rstd.p, rows, C, eps);
  report("rmsnorm");
  resetCounts();
  paro::rmsnormBwdK(dy.p, dt, x.p, dt, w.p, dt, (const float*)rstd.p, dx.p, dt, nullptr, rows, C);
  report("rmsnormBwd");
  for (const DevBuf* b : {&x, &w, &y, &dy, &dx, &rstd}) b->checkGuards();
  writeFile(dir + "/y", y.values());
  writeFile(dir + "/rstd", rstd.values());
  writeFile(dir + "/dx", dx.values());
  return 0;
}

// smoothl1 dir dt n withGrad shift
int smoothL1(char** a) {
  std::string dir = a[0];
  int dt = atoi(a[1]);
  size_t n = (size_t)atol(a[2]);
  bool withGrad = atoi(a[3]) != 0;
  size_t shift = (size_t)atol(a[4]);
  DevBuf pred("pred", dt, n, shift), target("target", dt, n, shift), dpred("dpred", dt, withGrad ? n : 0, shift);
  pred.fill(readFile<float>(dir + "/pred", n));
  target.fill(readFile<float>(dir + "/target", n));
  resetCounts();
  double sum = paro::smoothL1K(pred.p, dt, target.p, dt, n, withGrad ? dpred.p : nullptr, dt);
  report("smoothL1");
  std::printf("sum %.17g\n", sum);
  for (const DevBuf* b : {&pred, &target, &dpred}) b->checkGuards();
  if (withGrad) writeFile(dir + "/dpred", dpred.values());
  return 0;
}

// adamw dir pdt gdt mdt n lr beta1 beta2 eps wd stepSize sqrtBc2 shift smCount (m and v both of dtype mdt)
int adamw(char** a) {
  std::string dir = a[0];
  int pdt = atoi(a[1]), gdt = atoi(a[2]), mdt = atoi(a[3]);
  size_t n = (size_t)atol(a[4]);
  float h[7];
  for (int k = 0; k < 7; k++) h[k] = (float)strtod(a[5 + k], nullptr);
  size_t shift = (size_t)atol(a[12]);
  paro::g_emuSmCount = atoi(a[13]);
  DevBuf p("p", pdt, n, shift), g("g", gdt, n, shift), m("m", mdt, n, shift), v("v", mdt, n, shift);
  p.fill(readFile<float>(dir + "/p", n));
  g.fill(readFile<float>(dir + "/g", n));
  m.fill(readFile<float>(dir + "/m", n));
  v.fill(readFile<float>(dir + "/v", n));
  resetCounts();
  paro::adamwK(p.p, pdt, g.p, gdt, m.p, mdt, v.p, mdt, n, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
  report("adamw");
  for (const DevBuf* b : {&p, &g, &m, &v}) b->checkGuards();
  writeFile(dir + "/p.out", p.values());
  writeFile(dir + "/m.out", m.values());
  writeFile(dir + "/v.out", v.values());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string op = argc > 1 ? argv[1] : "";
  int want = op == "rope" ? 9 : op == "rmsnorm" ? 6 : op == "smoothl1" ? 5 : op == "adamw" ? 14 : -1;
  if (want < 0 || argc != want + 2) {
    std::fprintf(stderr, "usage: rope|rmsnorm|smoothl1|adamw dir args (see elementwise-main.cc)\n");
    return 2;
  }
  char** a = argv + 2;
  return op == "rope" ? rope(a) : op == "rmsnorm" ? rmsnorm(a) : op == "smoothl1" ? smoothL1(a) : adamw(a);
}
