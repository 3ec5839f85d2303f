// One ParoQuant linear's inputs as the Node emulation tests write them (raw f32/i32 files in a folder: W, alpha,
// pairs, theta, scale, zpf), for the harnesses that run the transform kernels (fused-main.cc, resid-main.cc), and the
// composition they compare with (its column op and forward). Include after files.h and ops.h.
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

// The composition's forward on the unfused kernels (transform.ts transformForward, f32 states): R = givens(W ⊙ α),
// the quantizer — stage 1 min/max (which sets scale and zpf), stage 2 the given grid — and U = givens⁻¹(fq(R)); the
// unrounded Ŵ is U ⊘ α.
struct ParoComposition {
  std::vector<float> R, U, scale, zpf;
};

inline ParoComposition compositionForward(const ParoLinearInputs& in, int O, int I, int K, int gs, int qmax, int stage) {
  const size_t n = (size_t)O * I, nG = n / gs;
  ParoComposition c{std::vector<float>(n, NAN), std::vector<float>(n, NAN), in.scale, in.zpf};
  std::vector<float> Ws = colOp(in.W, in.alpha, false), rq(n, NAN);
  paro::givensK(Ws.data(), paro::DT_F32, c.R.data(), paro::DT_F32, O, I, in.pairs.data(), in.theta.data(), K, gs, false);
  if (stage == 1) {
    paro::fqMinMaxK(c.R.data(), paro::DT_F32, rq.data(), paro::DT_F32, c.scale.data(), c.zpf.data(), nG, gs, qmax);
  } else {
    paro::fqParamsK(c.R.data(), paro::DT_F32, in.scale.data(), in.zpf.data(), rq.data(), paro::DT_F32, nG, gs, qmax);
  }
  paro::givensK(rq.data(), paro::DT_F32, c.U.data(), paro::DT_F32, O, I, in.pairs.data(), in.theta.data(), K, gs, true);
  return c;
}
