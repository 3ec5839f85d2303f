// native/src/k_gram.cu as a host-emulation translation unit (test/cuda-emu/gram-emu.h supplies its inline-PTX
// helpers, the TF32 conversion and the mma): test/group-gram-emu.test.ts, and harnesses that link groupGramK:
// test/paro-resid-emu.test.ts (paroMinMaxGramK runs groupGramK on its dense rows).
import { emulatedLaunches, kernelSource } from './cuda-emu-build.js';

/** k_gram.cu's inline-PTX helpers, which gram-emu.h defines instead. */
const PTX_HELPERS = ['tf32Bits', 'mmaTf32'];

/** k_gram.cu without its PTX helpers and with its launches emulated (the emulation headers come first, by -include). */
export function groupGramEmulationSource(): string {
  const lines = kernelSource('k_gram.cu').split('\n');
  const out: string[] = [];
  let removed = 0;
  for (let i = 0; i < lines.length; i++) {
    const m = /^__device__ __forceinline__ \w+ (\w+)\(/.exec(lines[i]);
    if (m && PTX_HELPERS.includes(m[1])) {
      while (lines[i] !== '}') i++;
      removed++;
      continue;
    }
    out.push(lines[i]);
  }
  if (removed !== PTX_HELPERS.length) throw new Error(`k_gram.cu: found ${removed} of the PTX helpers ${PTX_HELPERS.join(', ')}`);
  const src = emulatedLaunches(out.join('\n'), 'k_gram.cu');
  if (/\basm\b/.test(src)) throw new Error('k_gram.cu: inline PTX left after removing the helpers');
  return src;
}

/** A translation unit: the emulation headers, then groupGramEmulationSource. */
export function groupGramEmulationUnit(): string {
  return `#include "common.cuh"\n#include "gram-emu.h"\n${groupGramEmulationSource()}`;
}
