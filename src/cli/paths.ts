// Locations inside the installed package: found by walking up from this module to our package.json, so they hold
// from src/ (tsx, vitest), from dist/, and from a single-file bundle placed anywhere inside the repository.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

function findPackageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'paro-dflash') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(fileURLToPath(new URL('../../', import.meta.url)));
    dir = up;
  }
}

export const PACKAGE_ROOT = findPackageRoot();
/** The built-in demo model (a copy of the tiny-qwen3 fixture). */
export const DEMO_MODEL_DIR = path.join(PACKAGE_ROOT, 'examples', 'tiny-qwen3');
/** The built-in default calibration set. */
export const DEFAULT_CALIB_FILE = path.join(PACKAGE_ROOT, 'calib', 'default.jsonl');
