// native/src/k_reduce.cu under the host emulation (test/elementwise-kernels-emu.test.ts writes k_reduce_emu.cc, the
// file with its launches rewritten to emuLaunch); a translation unit of its own, as on the device.
#include "elementwise-emu.h"

#include "k_reduce_emu.cc"
