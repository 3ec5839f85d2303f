// One ParoQuant linear's inputs as the Node emulation tests write them (raw f32/i32 files in a folder: W, alpha,
// pairs, theta, scale, zpf), for the harnesses that run the transform kernels (fused-main.cc, resid-main.cc), and the
// composition's column op. Include after files.h.
#pragma once
#include <string>
#include <vector>

struct ParoLinearInputs {
  std::vector<float> W, alpha;
  std::vector<int> pairs;
  std::vector<float> theta, scale, zpf;
};

inline ParoLinearInputs readParoLinear(const std::string& dir, int O, int I, int K, int gs) {
  size_t n = (size_t)O * I, nG = n / gs;
  return {readFile<float>(dir + "/W", n), readFile<float>(dir + "/alpha", I), readFile<int>(dir + "/pairs", (size_t)K * I),
          readFile<float>(dir + "/theta", (size_t)K * I / 2), readFile<float>(dir + "/scale", nG),
          readFile<float>(dir + "/zpf", nG)};
}

// mulCols / divCols (k_elementwise.cu colOpKernel): one f32 product or quotient per element.
inline std::vector<float> colOp(const std::vector<float>& x, const std::vector<float>& v, bool div) {
  std::vector<float> y(x.size());
  for (size_t k = 0; k < x.size(); k++) y[k] = div ? x[k] / v[k % v.size()] : x[k] * v[k % v.size()];
  return y;
}
