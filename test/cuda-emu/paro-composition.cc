// The unfused kernels of native/src/k_paro.cu (Givens v1/v2, fake quantizers) under the host emulation, as their own
// translation unit: fused-main.cc runs the composition of the unfused ops on them next to the fused kernels. The test
// rewrites k_paro.cu into k_paro_emu.cc (shared memory and launches) as for the fused kernels.
#include "common.cuh"
#include "ops.h"
#include "paro-emu-prelude.h"

#include "k_paro_emu.cc"
