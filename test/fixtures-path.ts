// Where the shared fixtures live: ../shared/fixtures beside the repository (CI: a clean clone with ../shared).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const FIXTURES = fileURLToPath(new URL('../../shared/fixtures', import.meta.url));
export const HAVE_FIXTURES = existsSync(FIXTURES);
if (!HAVE_FIXTURES) console.warn(`fixtures not found at ${FIXTURES}: tests that need them are skipped`);

/** The embedded demo model (a copy of fixtures/tiny-qwen3, always present in the repository). */
export const DEMO_MODEL = fileURLToPath(new URL('../examples/tiny-qwen3', import.meta.url));
