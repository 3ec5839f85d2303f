// Export a drafter in the format the official DFlash code, SGLang, vLLM and MLX load (dflash-spec §5): config.json
// with every field readers look for, model.safetensors in BF16 with the §5.3 names (no "model." prefix, no
// embeddings or LM head, __metadata__ {"format": "pt"}), and our manifest.json. Written to a temporary directory and
// renamed into place when complete.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { prepareOutput } from '../io/atomic-output.js';
import { writeSafetensors, type TensorData } from '../io/safetensors-writer.js';
import { f32ToBf16 } from '../numerics/half.js';
import { drafterConfigJson, type DrafterConfig } from './drafter-config.js';
import { drafterTensors, type DrafterWeights } from './drafter-weights.js';

/** Write config.json + model.safetensors (+ manifest.json when given) into an existing directory. */
export function writeDrafterFiles(be: Backend, dir: string, c: DrafterConfig, w: DrafterWeights, manifest?: Record<string, unknown>): void {
  const tensors: TensorData[] = drafterTensors(c, w).map(({ spec, tensor }) => ({
    name: spec.name, dtype: 'BF16', shape: spec.shape, data: f32ToBf16(be.toHost(tensor)),
  }));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(drafterConfigJson(c), null, 2) + '\n');
  if (manifest) {
    const files: Record<string, string> = {};
    for (const f of ['config.json', 'model.safetensors']) files[f] = sha256File(path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...manifest, files }, null, 2) + '\n');
  }
}

/** Atomic export to outDir (refuses to overwrite without force). extra(dir) may add files before the rename. */
export function exportDrafter(
  be: Backend, outDir: string, c: DrafterConfig, w: DrafterWeights, manifest: Record<string, unknown>, opts: { force: boolean; extra?: (dir: string) => void },
): void {
  const out = prepareOutput(outDir, { force: opts.force, kind: 'dir' });
  try {
    writeDrafterFiles(be, out.tmpPath, c, w, manifest);
    opts.extra?.(out.tmpPath);
    out.commit();
  } catch (e) {
    out.abort();
    throw e;
  }
}

/** SHA-256 of a file, read in 64 MiB pieces. */
export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(64 << 20);
    let pos = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}
