// The fused transform kernels (native/src/k_paro_fused.cu) under the host emulation, next to the composition of the
// unfused kernels (native/src/k_paro.cu, compiled in paro-composition.cc) that transform.ts runs without them. The test
// rewrites the kernel files into k_paro_fused_emu.cc / k_paro_emu.cc (shared memory and launches); this program reads
// the inputs the test writes (raw f32/i32 files in a folder), runs paroTransformK and paroTransformBwdK, and the
// composition, and writes the outputs as f32 files: out.<name> fused, comp.<name> the composition.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "common.cuh"
#include "ops.h"
#include "paro-emu-prelude.h"

#include "files.h"
#include "paro-linear-inputs.h"
#include "k_paro_fused_emu.cc"

using paro::DT_BF16;
using paro::DT_F32;

// argv: dir O I K gs stage odt (0 f32, 1 bf16)
int main(int argc, char** argv) {
  if (argc != 8) throw std::runtime_error("usage: dir O I K gs stage odt");
  std::string dir = argv[1];
  int O = atoi(argv[2]), I = atoi(argv[3]), K = atoi(argv[4]), gs = atoi(argv[5]), stage = atoi(argv[6]), odt = atoi(argv[7]);
  int qmax = 15;
  size_t n = (size_t)O * I, nG = n / gs;
  auto [W, alpha, pairs, theta, scale, zpf] = readParoLinear(dir, O, I, K, gs);
  auto dWhat = readFile<float>(dir + "/dWhat", n);
  auto asOut = [&](std::vector<float> v) {  // Ŵ as stored in odt, read back as f32
    if (odt == DT_BF16)
      for (float& x : v) x = paro::bf16ToF(paro::fToBf16(x));
    return v;
  };

  // ---- fused ----
  std::vector<float> gScale(nG, NAN), gZpf(nG, NAN);
  std::vector<uint16_t> out16(odt == DT_BF16 ? n : 0);
  std::vector<float> out32(odt == DT_F32 ? n : 0, NAN);
  void* out = odt == DT_BF16 ? (void*)out16.data() : (void*)out32.data();
  paro::paroTransformK(W.data(), DT_F32, alpha.data(), pairs.data(), theta.data(), stage == 2 ? scale.data() : nullptr,
                       stage == 2 ? zpf.data() : nullptr, out, odt, stage == 1 ? gScale.data() : nullptr,
                       stage == 1 ? gZpf.data() : nullptr, O, I, K, gs, qmax);
  std::vector<float> What(n);
  for (size_t i = 0; i < n; i++) What[i] = odt == DT_BF16 ? paro::bf16ToF(out16[i]) : out32[i];
  writeFile(dir + "/out.What", What);
  const float* bScale = stage == 1 ? gScale.data() : scale.data();
  const float* bZpf = stage == 1 ? gZpf.data() : zpf.data();
  if (stage == 1) {
    writeFile(dir + "/out.scale", gScale);
    writeFile(dir + "/out.zpf", gZpf);
    std::vector<float> dtheta((size_t)K * I / 2, NAN), dalpha(I, NAN);
    paro::paroTransformBwdK(dWhat.data(), DT_F32, W.data(), DT_F32, alpha.data(), pairs.data(), theta.data(), bScale,
                            bZpf, 1, dtheta.data(), dalpha.data(), nullptr, DT_F32, nullptr, O, I, K, gs, qmax);
    writeFile(dir + "/out.dtheta", dtheta);
    writeFile(dir + "/out.dalpha", dalpha);
  } else {
    std::vector<float> dW(n, NAN), dscale(nG, NAN);
    paro::paroTransformBwdK(dWhat.data(), DT_F32, W.data(), DT_F32, alpha.data(), pairs.data(), theta.data(), bScale,
                            bZpf, 2, nullptr, nullptr, dW.data(), DT_F32, dscale.data(), O, I, K, gs, qmax);
    writeFile(dir + "/out.dW", dW);
    writeFile(dir + "/out.dscale", dscale);
  }

  // ---- the composition (transform.ts transformForward / transformBackward on the unfused ops, f32 states) ----
  auto [R, U, cScale, cZpf] = compositionForward({W, alpha, pairs, theta, scale, zpf}, O, I, K, gs, qmax, stage);
  writeFile(dir + "/comp.What", asOut(colOp(U, alpha, true)));
  if (stage == 1) {
    writeFile(dir + "/comp.scale", cScale);
    writeFile(dir + "/comp.zpf", cZpf);
  }
  std::vector<float> dU = colOp(dWhat, alpha, true), drq(n, NAN), dR(n, NAN), dWs(n, NAN), dscale(nG, NAN);
  std::vector<float> dthI((size_t)K * I / 2, NAN), dthF((size_t)K * I / 2, NAN);
  paro::givensBwdK(dU.data(), DT_F32, U.data(), DT_F32, drq.data(), DT_F32, dthI.data(), O, I, pairs.data(), theta.data(),
                   K, gs, true);
  if (stage == 1)
    paro::fqMinMaxBwdK(drq.data(), DT_F32, R.data(), DT_F32, cScale.data(), cZpf.data(), dR.data(), DT_F32, nG, gs, qmax);
  else
    paro::fqParamsBwdK(drq.data(), DT_F32, R.data(), DT_F32, scale.data(), zpf.data(), dR.data(), DT_F32, dscale.data(),
                       nG, gs, qmax);
  paro::givensBwdK(dR.data(), DT_F32, R.data(), DT_F32, dWs.data(), DT_F32, dthF.data(), O, I, pairs.data(), theta.data(),
                   K, gs, false);
  if (stage == 2) {
    writeFile(dir + "/comp.dW", colOp(dWs, alpha, false));
    writeFile(dir + "/comp.dscale", dscale);
  }
  return 0;
}
