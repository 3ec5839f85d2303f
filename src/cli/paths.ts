// Locations inside the installed package (the same from src/ under tsx/vitest and from dist/).
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const PACKAGE_ROOT = path.resolve(fileURLToPath(new URL('../../', import.meta.url)));
/** The built-in demo model (a copy of the tiny-qwen3 fixture). */
export const DEMO_MODEL_DIR = path.join(PACKAGE_ROOT, 'examples', 'tiny-qwen3');
/** The built-in default calibration set. */
export const DEFAULT_CALIB_FILE = path.join(PACKAGE_ROOT, 'calib', 'default.jsonl');
