// cuBLAS reached through dlopen, so the addon compiles where only nvcc and cudart exist (no cuBLAS headers or
// libraries) and links nothing of cuBLAS: the few entry points used are declared in cublas_dyn.cc.
#pragma once

#include <string>

namespace paro {

/** dlopen libcublas (PARO_CUBLAS, then .so.13, .so.12, .so, then known toolkit folders and Python/conda environments,
 *  the active $VIRTUAL_ENV / $CONDA_PREFIX first). */
bool cublasLoad(std::string* loadedFrom, std::string* error);
/** Create the handle on the addon's stream (needs an open device); throws CudaError. */
void cublasInitHandle();
int cublasVersionNumber();

}  // namespace paro
