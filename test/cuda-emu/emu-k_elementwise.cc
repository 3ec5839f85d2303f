// native/src/k_elementwise.cu under the host emulation (test/elementwise-kernels-emu.test.ts writes k_elementwise_emu.cc,
// the file with its launches rewritten to emuLaunch); a translation unit of its own, as on the device (each kernel
// file has its own anonymous namespace: kBlock, the kernels).
#include "elementwise-emu.h"

// common.cuh's emulation has a host fillK of its own (used by the other emulated files): the kernel file's one is renamed.
#define fillK fillKElementwise
#include "k_elementwise_emu.cc"
