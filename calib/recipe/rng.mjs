// Seeded randomness for the calibration recipe: mulberry32 streams, one per named generator, so adding a generator
// does not change the documents of the others.

/** FNV-1a hash of a label mixed with the base seed: the seed of that label's stream. */
export function streamSeed(baseSeed, label) {
  let h = 0x811c9dc5 ^ baseSeed;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Rng {
  constructor(seed) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1) (mulberry32). */
  next() {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [lo, hi], both ends included. */
  int(lo, hi) {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick(list) {
    return list[Math.floor(this.next() * list.length)];
  }

  chance(p) {
    return this.next() < p;
  }

  /** k distinct elements, in random order. */
  sample(list, k) {
    const copy = list.slice();
    this.shuffle(copy);
    return copy.slice(0, k);
  }

  /** Fisher-Yates, in place. */
  shuffle(list) {
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const tmp = list[i];
      list[i] = list[j];
      list[j] = tmp;
    }
    return list;
  }

  /** A fresh stream derived from this one (for sub-generators). */
  fork() {
    return new Rng(Math.floor(this.next() * 4294967296));
  }
}
