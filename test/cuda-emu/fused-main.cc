// The fused transform kernels (native/src/k_paro_fused.cu) under the host emulation: reads the inputs the test writes
// (raw f32/i32 files in a folder), runs paroTransformK and paroTransformBwdK, writes the outputs as f32 files.
#include <cstdio>
#include <fstream>
#include <iostream>
#include "common.cuh"
#include "ops.h"

#include "files.h"

int main(int argc, char** argv) {
  std::string dir = argv[1];
  int O = atoi(argv[2]), I = atoi(argv[3]), K = atoi(argv[4]), gs = atoi(argv[5]), stage = atoi(argv[6]), odt = atoi(argv[7]);
  int qmax = 15;
  size_t n = (size_t)O * I, nG = n / gs;
  auto W = readFile<float>(dir + "/W", n);
  auto alpha = readFile<float>(dir + "/alpha", I);
  auto pairs = readFile<int>(dir + "/pairs", (size_t)K * I);
  auto theta = readFile<float>(dir + "/theta", (size_t)K * I / 2);
  auto scale = readFile<float>(dir + "/scale", nG);
  auto zpf = readFile<float>(dir + "/zpf", nG);
  auto dWhat = readFile<float>(dir + "/dWhat", n);
  std::vector<float> gScale(nG, NAN), gZpf(nG, NAN);
  std::vector<uint16_t> out16(odt == paro::DT_BF16 ? n : 0);
  std::vector<float> out32(odt == paro::DT_F32 ? n : 0, NAN);
  void* out = odt == paro::DT_BF16 ? (void*)out16.data() : (void*)out32.data();
  paro::paroTransformK(W.data(), paro::DT_F32, alpha.data(), pairs.data(), theta.data(), stage == 2 ? scale.data() : nullptr,
                       stage == 2 ? zpf.data() : nullptr, out, odt, stage == 1 ? gScale.data() : nullptr,
                       stage == 1 ? gZpf.data() : nullptr, O, I, K, gs, qmax);
  std::vector<float> What(n);
  for (size_t i = 0; i < n; i++) What[i] = odt == paro::DT_BF16 ? paro::bf16ToF(out16[i]) : out32[i];
  writeFile(dir + "/out.What", What);
  const float* bScale = stage == 1 ? gScale.data() : scale.data();
  const float* bZpf = stage == 1 ? gZpf.data() : zpf.data();
  if (stage == 1) {
    writeFile(dir + "/out.scale", gScale);
    writeFile(dir + "/out.zpf", gZpf);
    std::vector<float> dtheta((size_t)K * I / 2, NAN), dalpha(I, NAN);
    paro::paroTransformBwdK(dWhat.data(), paro::DT_F32, W.data(), paro::DT_F32, alpha.data(), pairs.data(), theta.data(),
                            bScale, bZpf, 1, dtheta.data(), dalpha.data(), nullptr, paro::DT_F32, nullptr, O, I, K, gs, qmax);
    writeFile(dir + "/out.dtheta", dtheta);
    writeFile(dir + "/out.dalpha", dalpha);
  } else {
    std::vector<float> dW(n, NAN), dscale(nG, NAN);
    paro::paroTransformBwdK(dWhat.data(), paro::DT_F32, W.data(), paro::DT_F32, alpha.data(), pairs.data(), theta.data(),
                            bScale, bZpf, 2, nullptr, nullptr, dW.data(), paro::DT_F32, dscale.data(), O, I, K, gs, qmax);
    writeFile(dir + "/out.dW", dW);
    writeFile(dir + "/out.dscale", dscale);
  }
  return 0;
}
