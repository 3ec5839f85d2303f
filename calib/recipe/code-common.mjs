// Identifier pools and helpers shared by the source-code generators.

export const NOUNS = ['order', 'invoice', 'sensor', 'reading', 'student', 'score', 'ticket', 'parcel', 'booking',
  'sample', 'record', 'message', 'task', 'event', 'item', 'measurement', 'payment', 'visit', 'shipment', 'trip',
  'request', 'entry', 'job', 'segment', 'station', 'account', 'plant', 'book', 'track', 'lesson'];

/** Containers: class name, thing held, its plural, unit of quantity. */
export const CONTAINERS = [
  ['Inventory', 'item', 'items', 'units'], ['Library', 'book', 'books', 'copies'], ['Pantry', 'ingredient', 'ingredients', 'grams'],
  ['Garage', 'tool', 'tools', 'pieces'], ['Aviary', 'bird', 'birds', 'birds'], ['Warehouse', 'crate', 'crates', 'crates'],
  ['SeedBank', 'seed', 'seeds', 'packets'], ['Wardrobe', 'garment', 'garments', 'pieces'], ['Cellar', 'bottle', 'bottles', 'bottles'],
];

export const THINGS = ['apple', 'hammer', 'lantern', 'rope', 'kettle', 'blanket', 'violin', 'saw', 'basil', 'tulip',
  'wrench', 'candle', 'compass', 'ladder', 'spoon', 'drill', 'fern', 'sparrow', 'robin', 'finch', 'cedar', 'maple'];

export const WORD_SENTENCES = [
  'the quick fox and the slow fox met the other fox',
  'to be or not to be that is the question we ask',
  'data in data out and data all around the data center',
  'a rose is a rose is a rose said the poet to the gardener',
  'rain on the roof rain on the road rain on the river',
  'one fish two fish red fish blue fish old fish new fish',
  'the cat sat on the mat and the dog sat on the log',
  'we test the code and the code tests us back',
];

export function camel(...parts) {
  return parts.map((p, i) => (i === 0 ? p : p.charAt(0).toUpperCase() + p.slice(1))).join('');
}

export function pascal(...parts) {
  return parts.map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join('');
}

export function snake(...parts) {
  return parts.join('_');
}

export function indent(text, spaces) {
  const pad = ' '.repeat(spaces);
  return text.split('\n').map((l) => (l === '' ? l : pad + l)).join('\n');
}

/** A sorted list of distinct integers. */
export function sortedDistinct(rng, n, lo, hi) {
  const set = new Set();
  while (set.size < n) set.add(rng.int(lo, hi));
  return [...set].sort((a, b) => a - b);
}

export function intList(rng, n, lo, hi) {
  return Array.from({ length: n }, () => rng.int(lo, hi));
}

/** Python float repr for the simple values used here (enough digits, no trailing zeros beyond one). */
export function pyFloat(x) {
  if (Number.isInteger(x)) return `${x}.0`;
  return String(x);
}

export function caesar(text, shift) {
  return Array.from(text, (c) => {
    const code = c.charCodeAt(0);
    if (code >= 97 && code <= 122) return String.fromCharCode(((code - 97 + shift) % 26 + 26) % 26 + 97);
    if (code >= 65 && code <= 90) return String.fromCharCode(((code - 65 + shift) % 26 + 26) % 26 + 65);
    return c;
  }).join('');
}

export function rle(text) {
  const out = [];
  for (let i = 0; i < text.length;) {
    let j = i;
    while (j < text.length && text[j] === text[i]) j++;
    out.push([text[i], j - i]);
    i = j;
  }
  return out;
}

export function primesUpTo(n) {
  const sieve = new Uint8Array(n + 1);
  const out = [];
  for (let i = 2; i <= n; i++) {
    if (sieve[i]) continue;
    out.push(i);
    for (let j = i * i; j <= n; j += i) sieve[j] = 1;
  }
  return out;
}

export function fib(n) {
  let a = 0, b = 1;
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}

export function movingAverage(xs, w) {
  const out = [];
  for (let i = 0; i + w <= xs.length; i++) out.push(xs.slice(i, i + w).reduce((a, b) => a + b, 0) / w);
  return out;
}

export function matMul(a, b) {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, v, k) => s + v * b[k][j], 0)));
}

/** Runs of text as Python/JS repr of a list. */
export function listRepr(xs) {
  return `[${xs.join(', ')}]`;
}

export function pad2(n) {
  return String(n).padStart(2, '0');
}
