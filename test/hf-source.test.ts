// Offline resolution of a release source: a local folder, or org/name[@revision] in a fake Hugging Face hub cache
// laid out as huggingface_hub writes it (refs/<branch> -> sha, snapshots/<sha>/<file> -> ../../blobs/<hash>).
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hfCacheDir, parseRepoSpec, resolveSource } from '../src/io/hf-source.js';
import { scratchDir } from './scratch.js';
import { userError } from './user-error.js';

const SHA_A = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const SHA_B = 'a1b2ffffe5f60718293a4b5c6d7e8f9012345678';

/** One cached repo with two snapshots: main -> SHA_A, pr/1 -> SHA_B; files are relative symlinks into blobs/. */
function fakeCache(): { cache: string; repoDir: string } {
  const cache = path.join(scratchDir('paro-hfhome-'), 'hub');
  const repoDir = path.join(cache, 'models--acme--tiny-llm');
  mkdirSync(path.join(repoDir, 'blobs'), { recursive: true });
  mkdirSync(path.join(repoDir, 'refs', 'pr'), { recursive: true });
  writeFileSync(path.join(repoDir, 'refs', 'main'), SHA_A); // no trailing newline, as huggingface_hub writes it
  writeFileSync(path.join(repoDir, 'refs', 'pr', '1'), `${SHA_B}\n`);
  for (const [sha, tag] of [[SHA_A, 'a'], [SHA_B, 'b']]) {
    const snap = path.join(repoDir, 'snapshots', sha);
    mkdirSync(snap, { recursive: true });
    for (const file of ['config.json', 'model.safetensors']) {
      const blob = `${tag}-${file}-blobhash`;
      writeFileSync(path.join(repoDir, 'blobs', blob), file === 'config.json' ? `{"rev":"${tag}"}` : 'weights');
      symlinkSync(path.join('..', '..', 'blobs', blob), path.join(snap, file));
    }
  }
  return { cache, repoDir };
}

describe('hfCacheDir', () => {
  it('prefers HF_HUB_CACHE, then HF_HOME/hub, then XDG_CACHE_HOME, then ~/.cache/huggingface/hub', () => {
    expect(hfCacheDir({ HF_HUB_CACHE: '/x/cache', HF_HOME: '/y' })).toBe('/x/cache');
    expect(hfCacheDir({ HUGGINGFACE_HUB_CACHE: '/old/name', HF_HOME: '/y' })).toBe('/old/name');
    expect(hfCacheDir({ HF_HOME: '/y', XDG_CACHE_HOME: '/xdg' })).toBe(path.join('/y', 'hub'));
    expect(hfCacheDir({ XDG_CACHE_HOME: '/xdg' })).toBe(path.join('/xdg', 'huggingface', 'hub'));
    expect(hfCacheDir({ HF_HOME: '/y' })).toBe(path.join('/y', 'hub'));
    expect(hfCacheDir({})).toMatch(/\.cache[/\\]huggingface[/\\]hub$/);
  });
});

describe('parseRepoSpec', () => {
  it('splits org/name@revision and rejects other shapes', () => {
    expect(parseRepoSpec('Qwen/Qwen3-8B')).toEqual({ repoId: 'Qwen/Qwen3-8B', revision: undefined });
    expect(parseRepoSpec('Qwen/Qwen3-8B@refs-x')).toEqual({ repoId: 'Qwen/Qwen3-8B', revision: 'refs-x' });
    expect(parseRepoSpec('acme/m@pr/1')).toEqual({ repoId: 'acme/m', revision: 'pr/1' });
    for (const bad of ['justname', 'a/b/c', 'acme/m@../../etc', 'acme/m@', '../x/y', 'acme/m@/abs']) {
      expect(parseRepoSpec(bad)).toBeNull();
    }
  });
});

describe('resolveSource', () => {
  it('uses an existing local folder as it is', () => {
    const dir = scratchDir('paro-local-');
    writeFileSync(path.join(dir, 'config.json'), '{}');
    expect(resolveSource(dir)).toEqual({ dir });
    expect(resolveSource(path.basename(dir), { cwd: path.dirname(dir) })).toEqual({ dir });
  });

  it('rejects a local folder without config.json', () => {
    const dir = scratchDir('paro-local-');
    expect(userError(() => resolveSource(dir)).oneLine()).toMatch(/no config\.json/);
  });

  it('resolves main, a branch with a slash, a full sha and a unique prefix through the symlinked snapshot', () => {
    const { cache, repoDir } = fakeCache();
    const env = { HF_HUB_CACHE: cache };
    const main = resolveSource('acme/tiny-llm', { env });
    expect(main).toEqual({ dir: path.join(repoDir, 'snapshots', SHA_A), repoId: 'acme/tiny-llm', revision: 'main', commit: SHA_A });
    expect(JSON.parse(readFileSync(path.join(main.dir, 'config.json'), 'utf8'))).toEqual({ rev: 'a' });
    expect(resolveSource('acme/tiny-llm@pr/1', { env }).commit).toBe(SHA_B);
    expect(resolveSource(`acme/tiny-llm@${SHA_B}`, { env }).commit).toBe(SHA_B);
    expect(resolveSource('acme/tiny-llm@a1b2c3', { env }).commit).toBe(SHA_A);
    // HF_HOME/hub is used when HF_HUB_CACHE is unset
    expect(resolveSource('acme/tiny-llm', { env: { HF_HOME: path.dirname(cache) } }).commit).toBe(SHA_A);
  });

  it('says which cache path was searched when the repo or revision is absent', () => {
    const { cache, repoDir } = fakeCache();
    const env = { HF_HUB_CACHE: cache };
    const missing = userError(() => resolveSource('acme/other', { env }));
    expect(missing.oneLine()).toContain(path.join(cache, 'models--acme--other'));
    expect(missing.exitCode).toBe(2);
    const rev = userError(() => resolveSource('acme/tiny-llm@v2', { env })).oneLine();
    expect(rev).toContain(path.join(repoDir, 'refs'));
    expect(rev).toMatch(/cached: main, pr\/1, a1b2c3d4e5f6, a1b2ffffe5f6/);
    expect(userError(() => resolveSource('acme/tiny-llm@a1b2', { env })).oneLine()).toMatch(/ambiguous/);
    const sha = 'f'.repeat(40);
    expect(userError(() => resolveSource(`acme/tiny-llm@${sha}`, { env })).oneLine()).toContain(path.join(repoDir, 'snapshots', sha));
    expect(userError(() => resolveSource('not a repo', { env })).oneLine()).toMatch(/neither a folder nor/);
  });

  it('reports a snapshot whose symlinks point at missing blobs', () => {
    const { cache, repoDir } = fakeCache();
    rmSync(path.join(repoDir, 'blobs', 'a-model.safetensors-blobhash'));
    const msg = userError(() => resolveSource('acme/tiny-llm', { env: { HF_HUB_CACHE: cache } })).oneLine();
    expect(msg).toMatch(/incomplete: model\.safetensors point at missing blobs/);
  });

  it('rejects a ref file that does not hold a sha', () => {
    const { cache, repoDir } = fakeCache();
    writeFileSync(path.join(repoDir, 'refs', 'main'), 'garbage');
    expect(userError(() => resolveSource('acme/tiny-llm', { env: { HF_HUB_CACHE: cache } })).oneLine())
      .toMatch(/does not hold a commit sha/);
  });
});
