// JavaScript and TypeScript modules from templates, with JSDoc, node:test tests or console demos.

import { CONTAINERS, NOUNS, THINGS, WORD_SENTENCES, camel, caesar, intList, listRepr, pascal, rle,
  sortedDistinct } from './code-common.mjs';
import { CITIES, FIRST_NAMES, round } from './words.mjs';

const js = (s) => `'${s.replace(/'/g, "\\'")}'`;

// Each template: (rng, ts) → { code, checks: [expr, expectedLiteral][], demo: string[] }.
const TEMPLATES = [
  function sumBy(rng, ts) {
    const noun = rng.pick(NOUNS);
    const field = rng.pick(['amount', 'weight', 'duration', 'price', 'count']);
    const rows = intList(rng, rng.int(3, 5), 1, 90).map((v, i) => `{ id: ${i + 1}, ${field}: ${v} }`);
    const total = rows.reduce((s, r) => s + Number(r.match(/: (\d+) }$/)[1]), 0);
    const fn = camel('total', field);
    return {
      code: `/**
 * Sum the ${field} of every ${noun}.
 * @param {Array<{${field}: number}>} ${noun}s
 * @returns {number}
 */
export function ${fn}(${noun}s${ts ? `: { ${field}: number }[]` : ''})${ts ? ': number' : ''} {
  return ${noun}s.reduce((sum, ${noun[0]}) => sum + ${noun[0]}.${field}, 0);
}`,
      checks: [[`${fn}([${rows.join(', ')}])`, String(total)], [`${fn}([])`, '0']],
      demo: [`console.log(${fn}([${rows.join(', ')}]));`],
    };
  },

  function groupBy(rng, ts) {
    const people = rng.sample(FIRST_NAMES, 5).map((n) => [n, rng.pick(CITIES.slice(0, 4))]);
    const city = people[0][1];
    const inCity = people.filter((p) => p[1] === city).map((p) => p[0]);
    return {
      code: `/** Group values into a Map keyed by keyOf(value), keeping input order within each group. */
export function groupBy${ts ? '<T, K>' : ''}(values${ts ? ': Iterable<T>' : ''}, keyOf${ts ? ': (value: T) => K' : ''})${ts ? ': Map<K, T[]>' : ''} {
  const groups = new Map();
  for (const value of values) {
    const key = keyOf(value);
    const group = groups.get(key);
    if (group) group.push(value);
    else groups.set(key, [value]);
  }
  return groups;
}

const people = [
${people.map(([n, c]) => `  { name: ${js(n)}, city: ${js(c)} },`).join('\n')}
];`,
      checks: [[`groupBy(people, (p) => p.city).get(${js(city)}).map((p) => p.name)`, `[${inCity.map(js).join(', ')}]`]],
      demo: ['for (const [city, group] of groupBy(people, (p) => p.city)) {', '  console.log(`${city}: ${group.map((p) => p.name).join(\', \')}`);', '}'],
    };
  },

  function chunk(rng, ts) {
    const n = rng.int(5, 11), size = rng.int(2, 4);
    const xs = Array.from({ length: n }, (_, i) => i + 1);
    const chunks = [];
    for (let i = 0; i < n; i += size) chunks.push(listRepr(xs.slice(i, i + size)));
    return {
      code: `/**
 * Split an array into consecutive pieces of at most \`size\` elements.
 * The last piece is shorter when the length is not a multiple of size.
 */
export function chunk${ts ? '<T>' : ''}(items${ts ? ': readonly T[]' : ''}, size${ts ? ': number' : ''})${ts ? ': T[][]' : ''} {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(\`size must be a positive integer, got \${size}\`);
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}`,
      checks: [[`chunk(${listRepr(xs)}, ${size})`, `[${chunks.join(', ')}]`], ['chunk([], 3)', '[]']],
      demo: [`console.log(JSON.stringify(chunk(${listRepr(xs)}, ${size})));`],
    };
  },

  function wordFrequency(rng, ts) {
    const text = rng.pick(WORD_SENTENCES);
    const counts = new Map();
    for (const w of text.split(' ')) counts.set(w, (counts.get(w) ?? 0) + 1);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
    return {
      code: `/** Most frequent words first; ties in alphabetical order. */
export function topWords(text${ts ? ': string' : ''}, limit = 3)${ts ? ': [string, number][]' : ''} {
  const counts = new Map();
  for (const word of text.toLowerCase().match(/[a-z']+/g) ?? []) {
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, limit);
}`,
      checks: [[`topWords(${js(text)}, 1)`, `[[${js(top[0])}, ${top[1]}]]`]],
      demo: [`console.table(topWords(${js(text)}));`],
    };
  },

  function formatDuration(rng, ts) {
    const ms = rng.int(1, 9) * 3_600_000 + rng.int(0, 59) * 60_000 + rng.int(0, 59) * 1000 + rng.int(0, 999);
    const h = Math.floor(ms / 3_600_000), m = Math.floor(ms / 60_000) % 60, s = Math.floor(ms / 1000) % 60;
    const want = [h ? `${h}h` : '', m ? `${m}m` : '', `${s}s`].filter(Boolean).join(' ');
    return {
      code: `const UNITS = [
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
];

/** "2h 5m 9s" from milliseconds; sub-second remainders are dropped, zero units skipped (seconds always shown). */
export function formatDuration(ms${ts ? ': number' : ''})${ts ? ': string' : ''} {
  const parts = [];
  let rest = Math.floor(ms);
  for (const [label, size] of UNITS) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || label === 's') parts.push(\`\${n}\${label}\`);
  }
  return parts.join(' ');
}`,
      checks: [[`formatDuration(${ms})`, js(want)], ['formatDuration(999)', "'0s'"]],
      demo: [`console.log(formatDuration(${ms}));`],
    };
  },

  function parseQuery(rng, ts) {
    const keys = rng.sample(['page', 'sort', 'q', 'limit', 'lang', 'tag'], 3);
    const vals = keys.map((k) => (k === 'page' || k === 'limit' ? String(rng.int(1, 50)) : rng.pick(['name', 'date', 'en', 'pt', 'blue%20sky', 'news'])));
    const qs = keys.map((k, i) => `${k}=${vals[i]}`).join('&');
    return {
      code: `/** Parse "a=1&b=two" into a plain object; later duplicates win, values are URI-decoded. */
export function parseQuery(query${ts ? ': string' : ''})${ts ? ': Record<string, string>' : ''} {
  const out${ts ? ': Record<string, string>' : ''} = {};
  for (const pair of query.replace(/^\\?/, '').split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
    out[key] = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1).replace(/\\+/g, ' '));
  }
  return out;
}`,
      checks: [[`parseQuery('?${qs}').${keys[0]}`, js(decodeURIComponent(vals[0]))]],
      demo: [`console.log(parseQuery('?${qs}'));`],
    };
  },

  function containerClass(rng, ts) {
    const [cls, thing, , unit] = rng.pick(CONTAINERS);
    const names = rng.sample(THINGS, 3);
    const ops = Array.from({ length: 4 }, () => [rng.pick(names), rng.int(1, 15)]);
    const total = ops.reduce((s, [, q]) => s + q, 0);
    return {
      code: `/** Counts ${unit} per ${thing}. */
export class ${cls} {
  #counts = new Map();

  add(${thing}${ts ? ': string' : ''}, quantity = 1)${ts ? ': this' : ''} {
    if (quantity <= 0) throw new RangeError(\`quantity must be positive, got \${quantity}\`);
    this.#counts.set(${thing}, (this.#counts.get(${thing}) ?? 0) + quantity);
    return this;
  }

  remove(${thing}${ts ? ': string' : ''}, quantity = 1)${ts ? ': this' : ''} {
    const held = this.#counts.get(${thing}) ?? 0;
    if (quantity > held) throw new Error(\`only \${held} ${unit} of \${${thing}} left\`);
    if (quantity === held) this.#counts.delete(${thing});
    else this.#counts.set(${thing}, held - quantity);
    return this;
  }

  get total()${ts ? ': number' : ''} {
    let sum = 0;
    for (const n of this.#counts.values()) sum += n;
    return sum;
  }

  get size()${ts ? ': number' : ''} {
    return this.#counts.size;
  }
}`,
      checks: [[`new ${cls}()${ops.map(([n, q]) => `.add(${js(n)}, ${q})`).join('')}.total`, String(total)]],
      demo: [`const store = new ${cls}()${ops.map(([n, q]) => `\n  .add(${js(n)}, ${q})`).join('')};`, 'console.log(store.total, store.size);'],
    };
  },

  function retry(rng, ts) {
    const attempts = rng.int(3, 6), delay = rng.pick([50, 100, 200, 250]);
    return {
      code: `const sleep = (ms${ts ? ': number' : ''}) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Call fn until it resolves, at most ${attempts} times, doubling the wait between attempts (${delay} ms first).
 * The last error is rethrown with the number of attempts in its message.
 */
export async function withRetry${ts ? '<T>' : ''}(fn${ts ? ': () => Promise<T>' : ''}, attempts = ${attempts}, firstDelay = ${delay})${ts ? ': Promise<T>' : ''} {
  let wait = firstDelay;
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw new Error(\`failed after \${attempts} attempts: \${err.message}\`);
      await sleep(wait);
      wait *= 2;
    }
  }
}`,
      checks: [],
      demo: ['let calls = 0;', "const flaky = async () => (++calls < 3 ? Promise.reject(new Error('busy')) : 'ok');", 'withRetry(flaky, 5, 10).then((v) => console.log(v, calls));'],
    };
  },

  function binarySearch(rng, ts) {
    const xs = sortedDistinct(rng, rng.int(6, 12), 1, 200);
    const hit = rng.pick(xs);
    return {
      code: `/** Leftmost index i with sorted[i] >= target (sorted.length when every element is smaller). */
export function lowerBound(sorted${ts ? ': readonly number[]' : ''}, target${ts ? ': number' : ''})${ts ? ': number' : ''} {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}`,
      checks: [[`lowerBound(${listRepr(xs)}, ${hit})`, String(xs.indexOf(hit))], [`lowerBound(${listRepr(xs)}, 1000)`, String(xs.length)]],
      demo: [`console.log(lowerBound(${listRepr(xs)}, ${hit}));`],
    };
  },

  function runLength(rng, ts) {
    let s = '';
    for (let i = 0; i < rng.int(4, 7); i++) s += rng.pick(['a', 'b', 'c', 'd']).repeat(rng.int(1, 4));
    const enc = rle(s).map(([c, n]) => `${n}${c}`).join('');
    return {
      code: `/** "aaabcc" → "3a1b2c". */
export function encodeRuns(text${ts ? ': string' : ''})${ts ? ': string' : ''} {
  let out = '';
  for (let i = 0; i < text.length; ) {
    let j = i;
    while (j < text.length && text[j] === text[i]) j++;
    out += \`\${j - i}\${text[i]}\`;
    i = j;
  }
  return out;
}

/** Inverse of encodeRuns. */
export function decodeRuns(encoded${ts ? ': string' : ''})${ts ? ': string' : ''} {
  return encoded.replace(/(\\d+)(\\D)/g, (_, n, ch) => ch.repeat(Number(n)));
}`,
      checks: [[`encodeRuns(${js(s)})`, js(enc)], [`decodeRuns(encodeRuns(${js(s)}))`, js(s)]],
      demo: [`console.log(encodeRuns(${js(s)}));`],
    };
  },

  function cipher(rng, ts) {
    const text = rng.pick(['Hello, World', 'See you at eight', 'Bring the map', 'Ship it on Friday']);
    const k = rng.int(1, 25);
    return {
      code: `/** Caesar shift of ASCII letters; everything else is unchanged. */
export function shiftLetters(text${ts ? ': string' : ''}, shift${ts ? ': number' : ''})${ts ? ': string' : ''} {
  return text.replace(/[a-z]/gi, (ch) => {
    const base = ch <= 'Z' ? 65 : 97;
    return String.fromCharCode(((ch.charCodeAt(0) - base + shift) % 26 + 26) % 26 + base);
  });
}`,
      checks: [[`shiftLetters(${js(text)}, ${k})`, js(caesar(text, k))]],
      demo: [`console.log(shiftLetters(${js(text)}, ${k}));`],
    };
  },

  function clampLerp(rng, ts) {
    const a = rng.int(0, 20), b = a + rng.int(5, 50), t = rng.pick([0.25, 0.5, 0.75, 0.1]);
    return {
      code: `export const clamp = (x${ts ? ': number' : ''}, lo${ts ? ': number' : ''}, hi${ts ? ': number' : ''}) => Math.min(hi, Math.max(lo, x));

/** Linear interpolation: a at t = 0, b at t = 1. */
export const lerp = (a${ts ? ': number' : ''}, b${ts ? ': number' : ''}, t${ts ? ': number' : ''}) => a + (b - a) * t;

/** Where x sits between a and b, clamped to [0, 1]. */
export const inverseLerp = (a${ts ? ': number' : ''}, b${ts ? ': number' : ''}, x${ts ? ': number' : ''}) => (a === b ? 0 : clamp((x - a) / (b - a), 0, 1));`,
      checks: [[`lerp(${a}, ${b}, ${t})`, round(a + (b - a) * t, 6)], [`clamp(${b + 3}, ${a}, ${b})`, String(b)]],
      demo: [`console.log(lerp(${a}, ${b}, ${t}), inverseLerp(${a}, ${b}, ${a + 1}));`],
    };
  },
];

const HEADERS = ['Helpers for the dashboard', 'Utility functions', 'Small pure functions with tests',
  'Data helpers for the client', 'Shared utilities (no dependencies)', 'Collection helpers'];

/** A JS (or TS) module: header comment, 2–4 definitions, then node:test tests, console.assert checks or a demo. */
export function jsDocument(rng) {
  const ts = rng.chance(0.35);
  const picked = rng.sample(TEMPLATES, rng.int(2, 4)).map((t) => t(rng.fork(), ts));
  const style = rng.int(0, 2);
  const withChecks = picked.filter((p) => p.checks.length > 0);
  const parts = [`// ${rng.pick(HEADERS)}${ts ? ' (TypeScript)' : ''}.`];
  if (style === 0 && withChecks.length > 0) {
    parts[0] += `\n\nimport { test } from 'node:test';\nimport assert from 'node:assert/strict';`;
  }
  parts.push(...picked.map((p) => p.code));
  if (style === 0 && withChecks.length > 0) {
    parts.push(withChecks.map((p, i) => `test('case ${i + 1}', () => {\n${p.checks.map(([e, v]) => `  assert.deepEqual(${e}, ${v});`).join('\n')}\n});`).join('\n\n'));
  } else if (style === 1 && withChecks.length > 0) {
    parts.push(withChecks.flatMap((p) => p.checks.map(([e, v]) => `console.assert(JSON.stringify(${e}) === JSON.stringify(${v}), ${js(e.length > 40 ? `${e.slice(0, 37)}...` : e)});`)).join('\n'));
  } else {
    parts.push(picked.flatMap((p) => p.demo).join('\n'));
  }
  return parts.join('\n\n') + '\n';
}
