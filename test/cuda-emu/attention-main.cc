// native/src/k_attention.cu's tensor-core kernels under the host emulation (test/cuda-emu/attention-emu.cuh) against
// a double-precision reference: random bf16 inputs for one shape and mask given on the command line, the kernel
// versions named by the last argument (a character each: 1 to 6 for PARO_ATTN_KERNEL v1 to v6, p for v4p, forward
// only); prints one line per version and output: name, relative Frobenius error, max abs error, and whether
// the −inf pattern of lse (fully masked rows) and the zeros of their outputs match.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "common.cuh"
#include "ops.h"

namespace paro {
void castK(const void* src, int sdt, void* dst, int ddt, size_t n) {
  for (size_t i = 0; i < n; i++) stf(dst, ddt, i, ldf(src, sdt, i));
}
void memsetD(void* dst, int byte, size_t bytes) { std::memset(dst, byte, bytes); }
}  // namespace paro

using namespace paro;

static uint64_t rngState = 1;
static float uni() {  // [-1, 1)
  rngState = rngState * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rngState >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

struct RefVis {
  int e1, s2, e2;
};

int main(int argc, char** argv) {
  if (argc < 16) {
    std::fprintf(stderr, "usage: D B tq tk kvStride H Hk mask(0 causal,1 full,2 dflash) qOffset ctxLen blockSize nBlocks odt seed versions\n");
    return 2;
  }
  int a = 1;
  const int D = atoi(argv[a++]), B = atoi(argv[a++]), tq = atoi(argv[a++]), tk = atoi(argv[a++]), kvS = atoi(argv[a++]);
  const int H = atoi(argv[a++]), Hk = atoi(argv[a++]), kind = atoi(argv[a++]), qOff = atoi(argv[a++]);
  const int ctxLen = atoi(argv[a++]), bs = atoi(argv[a++]), nB = atoi(argv[a++]), odt = atoi(argv[a++]);
  rngState = (uint64_t)atoll(argv[a++]) * 2654435761ull + 12345;
  const std::string versions = argv[a++];
  const float scale = 1.0f / std::sqrt((float)D);
  const size_t nq = (size_t)B * tq * H * D, nk = (size_t)B * kvS * Hk * D;
  std::vector<uint16_t> q(nq), dO(nq), k(nk), v(nk);
  for (auto& x : q) x = fToBf16(uni());
  for (auto& x : dO) x = fToBf16(uni());
  for (size_t i = 0; i < nk; i++) {
    const int row = (int)((i / ((size_t)Hk * D)) % kvS);
    // Spare cache rows (tk ≤ row < kvStride) hold NaN: a kernel that reads them poisons its outputs.
    k[i] = row < tk ? fToBf16(uni() * 2.0f) : 0x7fc0;
    v[i] = row < tk ? fToBf16(uni()) : 0x7fc0;
  }
  std::vector<int> anchors((size_t)B * std::max(nB, 1)), keep((size_t)B * std::max(nB, 1));
  for (size_t i = 0; i < anchors.size(); i++) {
    anchors[i] = 1 + (int)((uni() + 1.0f) * 0.5f * (ctxLen > 1 ? ctxLen - 1 : 1));
    keep[i] = uni() < 0.6f ? 1 : 0;
  }
  AttnMask m{};
  m.kind = kind;
  m.qOffset = qOff;
  m.qOffsets = nullptr;
  m.ctxLen = ctxLen;
  m.blockSize = bs;
  m.nBlocks = nB;
  m.anchors = anchors.data();
  m.keep = keep.data();
  AttnDims d{B, tq, tk, kvS, H, Hk, D, scale};

  auto vis = [&](int b, int i) {
    RefVis r{0, 0, 0};
    if (kind == MASK_CAUSAL) r.e1 = std::min(tk, std::max(0, qOff + i + 1));
    else if (kind == MASK_FULL) r.e1 = tk;
    else {
      const int n = i / bs, idx = b * nB + n;
      if (keep[idx]) {
        r.e1 = std::max(0, std::min(std::min(anchors[idx], ctxLen), tk));
        r.s2 = ctxLen + n * bs;
        r.e2 = std::max(r.s2, std::min(tk, r.s2 + bs));
      }
    }
    return r;
  };
  auto seen = [](const RefVis& r, int j) { return j < r.e1 || (j >= r.s2 && j < r.e2); };
  auto Q = [&](int b, int i, int h, int c) { return (double)bf16ToF(q[(((size_t)b * tq + i) * H + h) * D + c]); };
  auto G = [&](int b, int i, int h, int c) { return (double)bf16ToF(dO[(((size_t)b * tq + i) * H + h) * D + c]); };
  auto K = [&](int b, int j, int h, int c) { return (double)bf16ToF(k[(((size_t)b * kvS + j) * Hk + h) * D + c]); };
  auto V = [&](int b, int j, int h, int c) { return (double)bf16ToF(v[(((size_t)b * kvS + j) * Hk + h) * D + c]); };

  // Reference forward and backward in double.
  const int group = H / Hk;
  std::vector<double> rOut(nq, 0.0), rLse((size_t)B * H * tq), rDq(nq, 0.0), rDk(nk, 0.0), rDv(nk, 0.0);
  std::vector<float> outIn(nq), lseIn((size_t)B * H * tq);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < tq; i++) {
        const RefVis r = vis(b, i);
        std::vector<double> s(tk, -INFINITY);
        double mx = -INFINITY;
        for (int j = 0; j < tk; j++) {
          if (!seen(r, j)) continue;
          double x = 0;
          for (int c = 0; c < D; c++) x += Q(b, i, h, c) * K(b, j, h / group, c);
          s[j] = x * scale;
          mx = std::max(mx, s[j]);
        }
        double l = 0;
        for (int j = 0; j < tk; j++) if (s[j] != -INFINITY) l += std::exp(s[j] - mx);
        const size_t li = ((size_t)b * H + h) * tq + i;
        rLse[li] = l > 0 ? mx + std::log(l) : -INFINITY;
        lseIn[li] = (float)rLse[li];
        for (int c = 0; c < D; c++) {
          double o = 0;
          for (int j = 0; j < tk; j++) if (s[j] != -INFINITY) o += std::exp(s[j] - rLse[li]) * V(b, j, h / group, c);
          rOut[(((size_t)b * tq + i) * H + h) * D + c] = o;
          outIn[(((size_t)b * tq + i) * H + h) * D + c] = (float)o;
        }
        if (l == 0) continue;
        double Di = 0;
        for (int c = 0; c < D; c++) Di += G(b, i, h, c) * (double)outIn[(((size_t)b * tq + i) * H + h) * D + c];
        for (int j = 0; j < tk; j++) {
          if (s[j] == -INFINITY) continue;
          const double p = std::exp(s[j] - rLse[li]);
          double dp = 0;
          for (int c = 0; c < D; c++) dp += G(b, i, h, c) * V(b, j, h / group, c);
          const double ds = p * (dp - Di);
          for (int c = 0; c < D; c++) {
            rDq[(((size_t)b * tq + i) * H + h) * D + c] += scale * ds * K(b, j, h / group, c);
            rDk[(((size_t)b * kvS + j) * Hk + h / group) * D + c] += scale * ds * Q(b, i, h, c);
            rDv[(((size_t)b * kvS + j) * Hk + h / group) * D + c] += p * G(b, i, h, c);
          }
        }
      }

  auto report = [](const char* ver, const char* name, const std::vector<double>& ref, const std::vector<float>& got) {
    double num = 0, den = 0, maxAbs = 0;
    bool patternOk = true;
    for (size_t i = 0; i < ref.size(); i++) {
      if (std::isinf(ref[i]) || std::isinf(got[i])) {
        if (ref[i] != (double)got[i]) patternOk = false;
        continue;
      }
      const double e = (double)got[i] - ref[i];
      if (std::isnan(e)) patternOk = false;
      num += e * e;
      den += ref[i] * ref[i];
      maxAbs = std::max(maxAbs, std::fabs(e));
    }
    std::printf("%s %s relFro=%.3e maxAbs=%.3e pattern=%s\n", ver, name, std::sqrt(num / std::max(den, 1e-30)), maxAbs,
                patternOk ? "ok" : "BAD");
  };
  for (char ver : versions) {
    const std::string vname = ver == 'p' ? std::string("v4p") : std::string("v") + ver;
    setenv("PARO_ATTN_KERNEL", vname.c_str(), 1);
    std::vector<uint16_t> out16(odt == DT_BF16 ? nq : 0);
    std::vector<float> out32(odt == DT_F32 ? nq : 0), lse((size_t)B * H * tq, NAN);
    void* out = odt == DT_BF16 ? (void*)out16.data() : (void*)out32.data();
    attentionFwdK(q.data(), DT_BF16, k.data(), DT_BF16, v.data(), DT_BF16, out, odt, lse.data(), d, m, false);
    std::vector<float> o(nq);
    for (size_t i = 0; i < nq; i++) o[i] = odt == DT_BF16 ? bf16ToF(out16[i]) : out32[i];
    report(vname.c_str(), "out", rOut, o);
    std::vector<double> rl(rLse);
    report(vname.c_str(), "lse", rl, lse);
    // Version 4p takes version 4's backward: its emulation (most of a case's time) once is enough.
    if (ver == 'p') {
      std::fflush(stdout);
      continue;
    }
    std::vector<float> dq(nq, NAN), dk(nk, NAN), dv(nk, NAN);
    attentionBwdK(dO.data(), DT_BF16, q.data(), DT_BF16, k.data(), DT_BF16, v.data(), DT_BF16, outIn.data(), DT_F32,
                  lseIn.data(), dq.data(), DT_F32, dk.data(), DT_F32, dv.data(), DT_F32, d, m, false);
    report(vname.c_str(), "dq", rDq, dq);
    report(vname.c_str(), "dk", rDk, dk);
    report(vname.c_str(), "dv", rDv, dv);
    std::fflush(stdout);
  }
  return 0;
}
