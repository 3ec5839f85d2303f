// The Gram backward's residual side under the host emulation (test/paro-resid-emu.test.ts): paroTransformK with and
// without its residual outputs (native/src/k_paro_fused.cu, rewritten into k_paro_fused_emu.cc), next to the
// composition of k_paro.cu's unfused kernels (paro-composition.cc) for R and the unrounded Ŵ, and paroScaleGradK /
// paroMinMaxGramK (native/src/k_paro_resid.cu → k_paro_resid_emu.cc; the groupGramK it calls is k_gram.cu's, a
// translation unit of its own with gram-emu.h's TF32 mma). Inputs and outputs are raw files in a folder; every op
// runs twice (out.<name> and out2.<name>) so the test sees that reruns are bit-identical.
#include <bit>
#include <cstdio>
#include <iostream>

#include "common.cuh"
#include "ops.h"
#include "paro-emu-prelude.h"
#include "elementwise-emu.h"

#include "files.h"
#include "paro-linear-inputs.h"

// The device intrinsics k_paro_resid.cu uses.
inline int __popc(unsigned v) { return std::popcount(v); }
inline int __ffs(unsigned v) { return v ? std::countr_zero(v) + 1 : 0; }

#include "k_paro_fused_emu.cc"
#include "k_paro_resid_emu.cc"

using paro::DT_BF16;
using paro::DT_F32;

static size_t dtBytes(int dt) { return dt == DT_BF16 ? 2 : 4; }

// A device-like buffer of n elements of dt starting `offset` elements into a 16-byte aligned allocation (offset ≠ 0:
// a view the 16-byte path must not take).
struct Buf {
  std::vector<uint8_t> bytes;
  int dt;
  size_t offset;
  Buf(size_t n, int dt_, size_t offset_ = 0) : bytes((n + offset_) * dtBytes(dt_) + 16), dt(dt_), offset(offset_) {}
  void* ptr() {
    uintptr_t a = reinterpret_cast<uintptr_t>(bytes.data());
    a = (a + 15) / 16 * 16;
    return reinterpret_cast<uint8_t*>(a) + offset * dtBytes(dt);
  }
  std::vector<float> read(size_t n) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = paro::ldf(ptr(), dt, i);
    return v;
  }
  void fill(const std::vector<float>& v) {
    for (size_t i = 0; i < v.size(); i++) paro::stf(ptr(), dt, i, v[i]);
  }
};

// fwd dir O I K gs stage odt rdt
static void forward(const std::string& dir, int O, int I, int K, int gs, int stage, int odt, int rdt) {
  int qmax = 15;
  size_t n = (size_t)O * I, nG = n / gs, words = (gs + 31) / 32;
  auto [W, alpha, pairs, theta, scale, zpf] = readParoLinear(dir, O, I, K, gs);
  const float* pS = stage == 2 ? scale.data() : nullptr;
  const float* pZ = stage == 2 ? zpf.data() : nullptr;
  for (int run = 0; run < 3; run++) {
    // run 0: without the residual; runs 1, 2: with it.
    bool resid = run > 0;
    std::vector<float> gScale(nG, NAN), gZpf(nG, NAN);
    Buf out(n, odt), E(n, rdt);
    std::vector<int> ext(nG * 2 * words, 0x5a5a5a5a);  // garbage: every word must be written
    paro::paroTransformK(W.data(), DT_F32, alpha.data(), pairs.data(), theta.data(), pS, pZ, out.ptr(), odt,
                         stage == 1 ? gScale.data() : nullptr, stage == 1 ? gZpf.data() : nullptr, O, I, K, gs, qmax,
                         resid ? E.ptr() : nullptr, rdt, resid && stage == 1 ? ext.data() : nullptr);
    std::string tag = run == 0 ? "/plain." : run == 1 ? "/out." : "/out2.";
    writeFile(dir + tag + "What", out.read(n));
    if (stage == 1) writeFile(dir + tag + "scale", gScale);
    if (resid) {
      writeFile(dir + tag + "E", E.read(n));
      if (stage == 1) writeFile(dir + tag + "ext", ext);
    }
  }
  // The composition: R = givens(W ⊙ α), the quantizer, U = givens⁻¹, Ŵ = U ⊘ α in f32 (before any rounding).
  auto [R, U, cScale, cZpf] = compositionForward({W, alpha, pairs, theta, scale, zpf}, O, I, K, gs, qmax, stage);
  writeFile(dir + "/comp.R", R);
  writeFile(dir + "/comp.Whatf", colOp(U, alpha, true));
  if (stage != 1) return;
  // The Gram backward's stage-1 pieces on the fused outputs (E of run 1, the masks, the grid), and the composition's
  // dQ = G·(dŴ ⊘ α) (the inverse layers' backward) that they stand in for.
  auto dWhat = readFile<float>(dir + "/dWhat", n);
  auto E = readFile<float>(dir + "/out.E", n);
  auto ext = readFile<int>(dir + "/out.ext", nG * 2 * words);
  auto gScale = readFile<float>(dir + "/out.scale", nG);
  Buf Eb(n, rdt);
  Eb.fill(E);
  std::vector<float> S(nG, NAN), gram((size_t)gs * I, NAN);
  paro::paroScaleGradK(dWhat.data(), DT_F32, Eb.ptr(), rdt, gScale.data(), S.data(), nG, gs);
  writeFile(dir + "/out.S", S);
  if (gs % 32 == 0 && gs <= 128) {  // the group sizes paroMinMaxGramK takes (groupGramK's)
    paro::paroMinMaxGramK(S.data(), ext.data(), W.data(), DT_F32, alpha.data(), gram.data(), O, I, gs, qmax);
    writeFile(dir + "/out.gram", gram);
  }
  std::vector<float> dU = colOp(dWhat, alpha, true), dQ(n, NAN), dthI((size_t)K * I / 2, NAN);
  paro::givensBwdK(dU.data(), DT_F32, U.data(), DT_F32, dQ.data(), DT_F32, dthI.data(), O, I, pairs.data(), theta.data(),
                   K, gs, true);
  writeFile(dir + "/comp.dQ", dQ);
  writeFile(dir + "/comp.scale", cScale);
  writeFile(dir + "/comp.zpf", cZpf);
}

// sgrad dir nGroups gs ddt edt offset: dWhat, E, scale from files (f32), stored in ddt/edt `offset` elements into
// their buffers.
static void scaleGrad(const std::string& dir, size_t nG, int gs, int ddt, int edt, size_t offset) {
  size_t n = nG * gs;
  Buf D(n, ddt, offset), E(n, edt, offset);
  D.fill(readFile<float>(dir + "/dWhat", n));
  E.fill(readFile<float>(dir + "/E", n));
  auto scale = readFile<float>(dir + "/scale", nG);
  for (int run = 0; run < 2; run++) {
    std::vector<float> S(nG, NAN);
    paro::g_emuAccess8 = 0;
    paro::g_emuAccess1 = 0;
    paro::paroScaleGradK(D.ptr(), ddt, E.ptr(), edt, scale.data(), S.data(), nG, gs);
    writeFile(dir + (run == 0 ? "/out.S" : "/out2.S"), S);
    if (run == 0) std::printf("access8 %ld access1 %ld\n", paro::g_emuAccess8.load(), paro::g_emuAccess1.load());
  }
}

// gram dir O I gs qmax wdt: S, extremes (i32), W, alpha from files.
static void minMaxGram(const std::string& dir, int O, int I, int gs, int qmax, int wdt) {
  size_t n = (size_t)O * I, nG = n / gs, words = (gs + 31) / 32;
  auto S = readFile<float>(dir + "/S", nG);
  auto ext = readFile<int>(dir + "/ext", nG * 2 * words);
  auto alpha = readFile<float>(dir + "/alpha", I);
  Buf W(n, wdt);
  W.fill(readFile<float>(dir + "/W", n));
  for (int run = 0; run < 2; run++) {
    std::vector<float> out((size_t)gs * I, NAN);
    paro::paroMinMaxGramK(S.data(), ext.data(), W.ptr(), wdt, alpha.data(), out.data(), O, I, gs, qmax);
    writeFile(dir + (run == 0 ? "/out.gram" : "/out2.gram"), out);
  }
}

// rows dir O I gs qmax: S, extremes (i32), alpha from files; the dense rows c' (f32 [O, I]) that paroMinMaxGramK
// hands to groupGramK.
static void minMaxRows(const std::string& dir, int O, int I, int gs, int qmax) {
  size_t n = (size_t)O * I, nG = n / gs, words = (gs + 31) / 32;
  auto S = readFile<float>(dir + "/S", nG);
  auto ext = readFile<int>(dir + "/ext", nG * 2 * words);
  auto alpha = readFile<float>(dir + "/alpha", I);
  std::vector<float> c(n, NAN);
  paro::paroMinMaxRowsK(S.data(), ext.data(), alpha.data(), c.data(), O, I, gs, qmax);
  writeFile(dir + "/out.rows", c);
}

int main(int argc, char** argv) {
  try {
    std::string mode = argc > 2 ? argv[1] : "", dir = argc > 2 ? argv[2] : "";
    auto arg = [&](int i) { return atoi(argv[i]); };
    if (mode == "fwd" && argc == 10) forward(dir, arg(3), arg(4), arg(5), arg(6), arg(7), arg(8), arg(9));
    else if (mode == "sgrad" && argc == 8) scaleGrad(dir, (size_t)arg(3), arg(4), arg(5), arg(6), (size_t)arg(7));
    else if (mode == "gram" && argc == 8) minMaxGram(dir, arg(3), arg(4), arg(5), arg(6), arg(7));
    else if (mode == "rows" && argc == 7) minMaxRows(dir, arg(3), arg(4), arg(5), arg(6));
    else throw std::runtime_error("usage: fwd dir O I K gs stage odt rdt | sgrad dir nGroups gs ddt edt offset | gram dir O I gs qmax wdt | rows dir O I gs qmax");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
