// Where a release's source model lives, resolved offline: a local folder, or `org/name[@revision]` in the Hugging Face
// hub cache (`<cache>/models--org--name/{refs,snapshots,blobs}`, files in a snapshot usually symlinks into blobs/).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../errors.js';

export interface ResolvedSource {
  /** Folder holding config.json and the weights (for a cached repo: its snapshots/<commit> folder). */
  dir: string;
  /** "org/name" when the source came from the hub cache. */
  repoId?: string;
  /** The revision asked for ("main" when none was given). */
  revision?: string;
  /** The full commit sha of the snapshot used. */
  commit?: string;
}

export interface RepoSpec {
  repoId: string;
  revision?: string;
}

const DEFAULT_REVISION = 'main';
const FULL_SHA = /^[0-9a-f]{40}$/;
const SHA_PREFIX = /^[0-9a-f]{4,39}$/;
// Hub repo ids: one namespace and one name, letters, digits, '-', '_', '.' (no "--" or ".." runs allowed by the hub).
const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The hub cache folder, in huggingface_hub's order: HF_HUB_CACHE (or its older name HUGGINGFACE_HUB_CACHE), else
 * $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
 */
export function hfCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const direct = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE;
  if (direct) return path.resolve(direct);
  if (env.HF_HOME) return path.resolve(env.HF_HOME, 'hub');
  if (env.XDG_CACHE_HOME) return path.resolve(env.XDG_CACHE_HOME, 'huggingface', 'hub');
  return path.join(os.homedir(), '.cache', 'huggingface', 'hub');
}

/** "org/name" or "org/name@rev" as a repo spec; null when the text is not shaped like one. */
export function parseRepoSpec(spec: string): RepoSpec | null {
  const at = spec.indexOf('@');
  const repoId = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? undefined : spec.slice(at + 1);
  if (!REPO_ID.test(repoId) || repoId.includes('..')) return null;
  if (revision !== undefined && !isSafeRevision(revision)) return null;
  return { repoId, revision };
}

/** Branch/tag names may hold '/' (refs/pr/1) but must stay inside refs/. */
function isSafeRevision(rev: string): boolean {
  return rev.length > 0 && !rev.startsWith('/') && !rev.split('/').some((p) => p === '' || p === '.' || p === '..') &&
    !/[\\\0]/.test(rev);
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile(); // follows symlinks: a link to a missing blob is not a file
  } catch {
    return false;
  }
}

/**
 * Resolve a source: an existing folder is used as it is; otherwise `org/name[@revision]` is looked up in the hub cache
 * (revision: a branch or tag under refs/, a full commit sha, or a unique sha prefix). Never touches the network.
 */
export function resolveSource(spec: string, opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ResolvedSource {
  const env = opts.env ?? process.env;
  const local = path.resolve(opts.cwd ?? process.cwd(), spec);
  if (isDir(local)) {
    if (!isFile(path.join(local, 'config.json'))) {
      throw new UserError('the source folder has no config.json (expected a Hugging Face model folder)', { file: local, exitCode: 2 });
    }
    return { dir: local };
  }
  const repo = parseRepoSpec(spec);
  if (!repo) {
    throw new UserError(`source ${JSON.stringify(spec)} is neither a folder nor a Hugging Face repo id (org/name[@revision])`, { exitCode: 2 });
  }
  return resolveCachedRepo(repo, hfCacheDir(env));
}

/** A repo in the hub cache at cacheDir, or a UserError naming the path searched. */
export function resolveCachedRepo(repo: RepoSpec, cacheDir: string): ResolvedSource {
  const [org, name] = repo.repoId.split('/');
  const repoDir = path.join(cacheDir, `models--${org}--${name}`);
  const revision = repo.revision ?? DEFAULT_REVISION;
  const hint = `download it first (e.g. \`hf download ${repo.repoId}${repo.revision ? ` --revision ${repo.revision}` : ''}\`) or set HF_HUB_CACHE / HF_HOME`;
  if (!isDir(repoDir)) {
    throw new UserError(`${repo.repoId} is not in the Hugging Face cache (looked for ${repoDir}); ${hint}`, { exitCode: 2 });
  }
  const commit = commitFor(repoDir, revision, repo.repoId, hint);
  const dir = path.join(repoDir, 'snapshots', commit);
  if (!isDir(dir)) {
    throw new UserError(`${repo.repoId}@${revision} points at commit ${commit}, but ${dir} does not exist; ${hint}`, { exitCode: 2 });
  }
  const broken = fs.readdirSync(dir).filter((f) => {
    const p = path.join(dir, f);
    return fs.lstatSync(p).isSymbolicLink() && !fs.existsSync(p);
  });
  if (broken.length) {
    throw new UserError(`the cached snapshot ${dir} is incomplete: ${broken.sort().join(', ')} point at missing blobs; ${hint}`, { exitCode: 2 });
  }
  if (!isFile(path.join(dir, 'config.json'))) {
    throw new UserError(`the cached snapshot ${dir} has no config.json (only part of ${repo.repoId} was downloaded?); ${hint}`, { exitCode: 2 });
  }
  return { dir, repoId: repo.repoId, revision, commit };
}

function commitFor(repoDir: string, revision: string, repoId: string, hint: string): string {
  const ref = path.join(repoDir, 'refs', revision);
  if (isFile(ref)) {
    const sha = fs.readFileSync(ref, 'utf8').trim();
    if (!FULL_SHA.test(sha)) throw new UserError(`${ref} does not hold a commit sha (got ${JSON.stringify(sha.slice(0, 60))})`, { exitCode: 2 });
    return sha;
  }
  const snapshots = path.join(repoDir, 'snapshots');
  const commits = isDir(snapshots) ? fs.readdirSync(snapshots).filter((c) => FULL_SHA.test(c)) : [];
  if (FULL_SHA.test(revision)) return revision; // existence of its snapshot is checked by the caller
  if (SHA_PREFIX.test(revision)) {
    const hits = commits.filter((c) => c.startsWith(revision));
    if (hits.length === 1) return hits[0];
    if (hits.length > 1) {
      throw new UserError(`revision ${revision} of ${repoId} is ambiguous in the cache (${hits.sort().join(', ')}); give more of the sha`, { exitCode: 2 });
    }
  }
  const refsDir = path.join(repoDir, 'refs');
  const known = isDir(refsDir) ? listRefs(refsDir) : [];
  const have = [...known, ...commits.map((c) => c.slice(0, 12))];
  throw new UserError(
    `revision ${JSON.stringify(revision)} of ${repoId} is not in the cache (looked in ${refsDir} and ${snapshots}; ` +
      `cached: ${have.length ? have.join(', ') : 'nothing'}); ${hint}`,
    { exitCode: 2 },
  );
}

/** Branch/tag names under refs/, nested ones (pr/1) included. */
function listRefs(refsDir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(refsDir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listRefs(refsDir, rel));
    else out.push(rel);
  }
  return out.sort();
}
