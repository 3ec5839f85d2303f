// Python modules assembled from function and class templates, with docstrings, comments and tests whose expected
// values are computed here.

import { CONTAINERS, NOUNS, THINGS, WORD_SENTENCES, caesar, fib, indent, intList, listRepr, matMul, movingAverage,
  pascal, primesUpTo, rle, snake, sortedDistinct } from './code-common.mjs';
import { CITIES, FIRST_NAMES, JOBS, gcd, round } from './words.mjs';

/** Docstring in one of three common styles. */
function doc(rng, summary, args, returns) {
  const style = rng.int(0, 2);
  if (style === 0 || args.length === 0) return `"""${summary}"""`;
  if (style === 1) {
    return `"""${summary}\n\nArgs:\n${args.map(([n, d]) => `    ${n}: ${d}`).join('\n')}\n\nReturns:\n    ${returns}\n"""`;
  }
  return `"""${summary}\n\n${args.map(([n, d]) => `:param ${n}: ${d}`).join('\n')}\n:returns: ${returns}\n"""`;
}

function pyAssert(e, v) {
  if (v === 'True') return `assert ${e}`;
  if (v === 'False') return `assert not ${e}`;
  return `assert ${e} == ${v}`;
}

function unittestAssert(e, v) {
  if (v === 'True') return `self.assertTrue(${e})`;
  if (v === 'False') return `self.assertFalse(${e})`;
  return `self.assertEqual(${e}, ${v})`;
}
const pyStr = (s) => (s.includes("'") ? JSON.stringify(s) : `'${s}'`);

// Each template returns { code, imports, checks: [expression, expected][] , demo: string[] }.
const TEMPLATES = [
  function meanAndSpread(rng) {
    const noun = rng.pick(NOUNS);
    const fn = snake('mean', noun, 'value');
    const xs = intList(rng, rng.int(4, 8), 1, 60);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const hints = rng.chance(0.6);
    const code = `def ${fn}(values${hints ? ': list[float]' : ''})${hints ? ' -> float' : ''}:
    ${indent(doc(rng, `Return the arithmetic mean of the ${noun} values.`, [['values', `a non-empty list of ${noun} values`]], 'the mean as a float'), 4).trimStart()}
    if not values:
        raise ValueError("${fn} needs at least one value")
    return sum(values) / len(values)


def spread(values${hints ? ': list[float]' : ''})${hints ? ' -> float' : ''}:
    """Population standard deviation: the square root of the mean squared deviation."""
    centre = ${fn}(values)
    return math.sqrt(sum((v - centre) ** 2 for v in values) / len(values))`;
    const sd = Math.sqrt(xs.reduce((a, v) => a + (v - mean) ** 2, 0) / xs.length);
    return {
      code, imports: ['import math'],
      checks: [[`round(${fn}(${listRepr(xs)}), 4)`, round(mean, 4)], [`round(spread(${listRepr(xs)}), 4)`, round(sd, 4)]],
      demo: [`print(f"mean {${fn}(${listRepr(xs)}):.2f}")`],
    };
  },

  function keepAbove(rng) {
    const noun = rng.pick(NOUNS);
    const fn = rng.pick([snake('keep', noun + 's', 'above'), snake('filter', noun + 's'), snake(noun + 's', 'over', 'limit')]);
    const xs = intList(rng, rng.int(5, 10), 0, 100);
    const limit = rng.int(20, 80);
    const comp = rng.chance(0.5);
    const body = comp
      ? `    return [v for v in values if v > limit]`
      : `    kept = []\n    for v in values:\n        # Values equal to the limit are dropped on purpose.\n        if v > limit:\n            kept.append(v)\n    return kept`;
    return {
      code: `def ${fn}(values, limit):\n    ${indent(doc(rng, `Keep the ${noun} values strictly greater than limit, in their original order.`, [['values', 'an iterable of numbers'], ['limit', 'the exclusive lower bound']], 'a new list'), 4).trimStart()}\n${body}`,
      imports: [],
      checks: [[`${fn}(${listRepr(xs)}, ${limit})`, listRepr(xs.filter((v) => v > limit))], [`${fn}([], ${limit})`, '[]']],
      demo: [`print(${fn}(${listRepr(xs)}, ${limit}))`],
    };
  },

  function wordCount(rng) {
    const text = rng.pick(WORD_SENTENCES);
    const words = text.split(' ');
    const counts = new Map();
    for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);
    const [top, n] = [...counts.entries()].reduce((best, e) => (e[1] > best[1] ? e : best));
    const useCounter = rng.chance(0.5);
    const code = useCounter
      ? `def count_words(text):\n    """Count how often each lower-cased word occurs; punctuation is stripped from the ends."""\n    words = (w.strip(string.punctuation).lower() for w in text.split())\n    return Counter(w for w in words if w)`
      : `def count_words(text):\n    """Count how often each lower-cased word occurs; punctuation is stripped from the ends."""\n    counts = {}\n    for raw in text.split():\n        word = raw.strip(string.punctuation).lower()\n        if not word:\n            continue\n        counts[word] = counts.get(word, 0) + 1\n    return counts`;
    return {
      code, imports: useCounter ? ['import string', 'from collections import Counter'] : ['import string'],
      checks: [[`count_words(${pyStr(text)})[${pyStr(top)}]`, String(n)], [`len(count_words(${pyStr(text)}))`, String(counts.size)]],
      demo: [`for word, n in sorted(count_words(${pyStr(text)}).items()):`, `    print(f"{word:>10} {n}")`],
    };
  },

  function binarySearch(rng) {
    const xs = sortedDistinct(rng, rng.int(6, 12), 1, 99);
    const hit = rng.pick(xs);
    let miss = rng.int(1, 99);
    while (xs.includes(miss)) miss++;
    return {
      code: `def binary_search(sorted_values, target):
    """Index of target in sorted_values, or -1 when it is absent. O(log n) comparisons."""
    lo, hi = 0, len(sorted_values) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if sorted_values[mid] == target:
            return mid
        if sorted_values[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1`,
      imports: [],
      checks: [[`binary_search(${listRepr(xs)}, ${hit})`, String(xs.indexOf(hit))], [`binary_search(${listRepr(xs)}, ${miss})`, '-1']],
      demo: [`print(binary_search(${listRepr(xs)}, ${hit}))`],
    };
  },

  function containerClass(rng) {
    const [cls, thing, things, unit] = rng.pick(CONTAINERS);
    const names = rng.sample(THINGS, 3);
    const ops = [];
    const stock = new Map();
    for (let i = 0; i < 5; i++) {
      const name = rng.pick(names);
      const q = rng.int(1, 20);
      ops.push([name, q]);
      stock.set(name, (stock.get(name) ?? 0) + q);
    }
    const total = [...stock.values()].reduce((a, b) => a + b, 0);
    const [most] = [...stock.entries()].reduce((best, e) => (e[1] > best[1] ? e : best));
    const v = 'store';
    return {
      code: `class ${cls}:
    """Keeps a count of ${unit} per ${thing}."""

    def __init__(self):
        self._counts = {}

    def add(self, ${thing}, quantity=1):
        if quantity <= 0:
            raise ValueError(f"quantity must be positive, got {quantity}")
        self._counts[${thing}] = self._counts.get(${thing}, 0) + quantity

    def remove(self, ${thing}, quantity=1):
        """Take quantity ${unit} of ${thing} out; refuses to go below zero."""
        held = self._counts.get(${thing}, 0)
        if quantity > held:
            raise ValueError(f"only {held} ${unit} of {${thing}!r} left")
        if quantity == held:
            del self._counts[${thing}]
        else:
            self._counts[${thing}] = held - quantity

    def total(self):
        return sum(self._counts.values())

    def most_common(self):
        """The ${thing} with the largest count (the first one added wins ties)."""
        return max(self._counts, key=self._counts.get, default=None)

    def __len__(self):
        return len(self._counts)

    def __repr__(self):
        return f"${cls}({self._counts!r})"`,
      imports: [],
      setup: [`${v} = ${cls}()`, ...ops.map(([n, q]) => `${v}.add(${pyStr(n)}, ${q})`)],
      checks: [[`${v}.total()`, String(total)], [`len(${v})`, String(stock.size)], [`${v}.most_common()`, pyStr(most)]],
      demo: [`${v} = ${cls}()`, ...ops.map(([n, q]) => `${v}.add(${pyStr(n)}, ${q})`), `print(${v}, ${v}.total())`],
    };
  },

  function dataclassRecords(rng) {
    const people = rng.sample(FIRST_NAMES, rng.int(3, 5)).map((n) => [n, rng.pick(JOBS), rng.int(21, 64), rng.pick(CITIES)]);
    const oldest = people.reduce((a, b) => (b[2] > a[2] ? b : a));
    return {
      code: `@dataclass(frozen=True)
class Person:
    name: str
    job: str
    age: int
    city: str


PEOPLE = [
${people.map(([n, j, a, c]) => `    Person(${pyStr(n)}, ${pyStr(j)}, ${a}, ${pyStr(c)}),`).join('\n')}
]


def oldest(people):
    """The oldest person; raises ValueError on an empty list."""
    return max(people, key=lambda p: p.age)


def by_city(people):
    """Group names by city, each group sorted alphabetically."""
    groups = defaultdict(list)
    for p in people:
        groups[p.city].append(p.name)
    return {city: sorted(names) for city, names in groups.items()}`,
      imports: ['from collections import defaultdict', 'from dataclasses import dataclass'],
      checks: [['oldest(PEOPLE).name', pyStr(oldest[0])], ['sum(p.age for p in PEOPLE)', String(people.reduce((s, p) => s + p[2], 0))]],
      demo: ['for p in sorted(PEOPLE, key=lambda p: (p.age, p.name)):', '    print(f"{p.name:<10} {p.job:<14} {p.age:>3}  {p.city}")'],
    };
  },

  function fibonacci(rng) {
    const memo = rng.chance(0.5);
    const n = rng.int(10, 40);
    const code = memo
      ? `@lru_cache(maxsize=None)\ndef fib(n):\n    """The n-th Fibonacci number, fib(0) = 0 and fib(1) = 1 (memoised recursion)."""\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)`
      : `def fib(n):\n    """The n-th Fibonacci number, fib(0) = 0 and fib(1) = 1, in O(n) time and O(1) space."""\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a`;
    return {
      code, imports: memo ? ['from functools import lru_cache'] : [],
      checks: [['fib(0)', '0'], ['fib(1)', '1'], [`fib(${n})`, String(fib(n))]],
      demo: [`print([fib(i) for i in range(${rng.int(8, 15)})])`],
    };
  },

  function gcdLcm(rng) {
    const a = rng.int(12, 400), b = rng.int(12, 400);
    return {
      code: `def gcd(a, b):
    """Greatest common divisor by Euclid's algorithm."""
    while b:
        a, b = b, a % b
    return abs(a)


def lcm(a, b):
    """Least common multiple; lcm(0, n) is 0."""
    if a == 0 or b == 0:
        return 0
    return abs(a * b) // gcd(a, b)`,
      imports: [],
      checks: [[`gcd(${a}, ${b})`, String(gcd(a, b))], [`lcm(${a}, ${b})`, String((a * b) / gcd(a, b))], ['lcm(0, 5)', '0']],
      demo: [`print(gcd(${a}, ${b}), lcm(${a}, ${b}))`],
    };
  },

  function sieve(rng) {
    const n = rng.int(30, 500);
    const ps = primesUpTo(n);
    return {
      code: `def primes_up_to(limit):
    """All primes <= limit, by the sieve of Eratosthenes."""
    if limit < 2:
        return []
    is_prime = [True] * (limit + 1)
    is_prime[0] = is_prime[1] = False
    for p in range(2, int(limit ** 0.5) + 1):
        if is_prime[p]:
            # Multiples below p * p were already crossed out by smaller primes.
            for multiple in range(p * p, limit + 1, p):
                is_prime[multiple] = False
    return [i for i, flag in enumerate(is_prime) if flag]`,
      imports: [],
      checks: [[`len(primes_up_to(${n}))`, String(ps.length)], [`primes_up_to(${n})[-1]`, String(ps[ps.length - 1])], ['primes_up_to(1)', '[]']],
      demo: [`print(primes_up_to(${rng.int(20, 60)}))`],
    };
  },

  function runLength(rng) {
    const letters = rng.sample(['a', 'b', 'c', 'x', 'y', 'z', 'w'], 3);
    let s = '';
    for (let i = 0; i < rng.int(4, 8); i++) s += rng.pick(letters).repeat(rng.int(1, 5));
    const enc = rle(s);
    return {
      code: `def rle_encode(text):
    """Run-length encode: 'aaab' -> [('a', 3), ('b', 1)]."""
    runs = []
    for ch in text:
        if runs and runs[-1][0] == ch:
            runs[-1] = (ch, runs[-1][1] + 1)
        else:
            runs.append((ch, 1))
    return runs


def rle_decode(runs):
    return "".join(ch * n for ch, n in runs)`,
      imports: [],
      checks: [[`rle_encode(${pyStr(s)})`, `[${enc.map(([c, n]) => `('${c}', ${n})`).join(', ')}]`], [`rle_decode(rle_encode(${pyStr(s)}))`, pyStr(s)]],
      demo: [`print(rle_encode(${pyStr(s)}))`],
    };
  },

  function caesarCipher(rng) {
    const text = rng.pick(['Hello, World', 'Meet me at noon', 'Attack at dawn', 'The code is 42', 'Keep it simple']);
    const k = rng.int(1, 25);
    return {
      code: `def caesar(text, shift):
    """Shift letters by shift places, keeping case; other characters pass through."""
    out = []
    for ch in text:
        if ch.isascii() and ch.isalpha():
            base = ord("A") if ch.isupper() else ord("a")
            out.append(chr((ord(ch) - base + shift) % 26 + base))
        else:
            out.append(ch)
    return "".join(out)`,
      imports: [],
      checks: [[`caesar(${pyStr(text)}, ${k})`, pyStr(caesar(text, k))], [`caesar(caesar(${pyStr(text)}, ${k}), -${k})`, pyStr(text)]],
      demo: [`print(caesar(${pyStr(text)}, ${k}))`],
    };
  },

  function movingAvg(rng) {
    const xs = intList(rng, rng.int(6, 10), 0, 50);
    const w = rng.int(2, 4);
    const ma = movingAverage(xs, w);
    return {
      code: `def moving_average(values, window):
    """Means of every run of window consecutive values (len(values) - window + 1 of them)."""
    if window <= 0:
        raise ValueError("window must be positive")
    total = sum(values[:window])
    out = [total / window] if len(values) >= window else []
    for i in range(window, len(values)):
        # Slide: add the new value, drop the one that left the window.
        total += values[i] - values[i - window]
        out.append(total / window)
    return out`,
      imports: [],
      checks: [[`[round(v, 3) for v in moving_average(${listRepr(xs)}, ${w})]`, listRepr(ma.map((v) => round(v, 3)).map((s) => (s.includes('.') ? s : `${s}.0`)))]],
      demo: [`print(moving_average(${listRepr(xs)}, ${w}))`],
    };
  },

  function parseConfig(rng) {
    const keys = rng.sample(['host', 'port', 'user', 'timeout', 'retries', 'mode', 'path', 'level', 'color', 'workers'], 4);
    const choices = { host: ['localhost', 'db.internal', '10.0.0.5'], user: ['admin', 'deploy', 'reader'], mode: ['fast', 'safe', 'debug'],
      path: ['/srv/data', '/var/log/app', './out'], level: ['info', 'debug', 'warning'], color: ['auto', 'never', 'always'] };
    const vals = keys.map((k) => (k === 'port' ? String(rng.int(1024, 9999)) : choices[k] ? rng.pick(choices[k]) : String(rng.int(1, 30))));
    const text = `# settings\\n${keys.map((k, i) => `${k} = ${vals[i]}`).join('\\n')}\\n`;
    return {
      code: `def parse_config(text):
    """Parse 'key = value' lines; blank lines and lines starting with '#' are ignored."""
    settings = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"line {number}: expected key = value, got {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        settings[key] = value
    return settings`,
      imports: [],
      checks: [[`parse_config("${text}")[${pyStr(keys[1])}]`, pyStr(vals[1])], [`len(parse_config("${text}"))`, '4']],
      demo: [`print(parse_config("${text}"))`],
    };
  },

  function matrices(rng) {
    const n = rng.int(2, 3), m = rng.int(2, 3), p = rng.int(2, 3);
    const a = Array.from({ length: n }, () => intList(rng, m, -4, 9));
    const b = Array.from({ length: m }, () => intList(rng, p, -4, 9));
    const lit = (x) => `[${x.map(listRepr).join(', ')}]`;
    return {
      code: `def transpose(matrix):
    return [list(row) for row in zip(*matrix)]


def matmul(a, b):
    """Product of an n x m and an m x p matrix given as lists of rows."""
    if len(a[0]) != len(b):
        raise ValueError(f"shapes do not match: {len(a)}x{len(a[0])} times {len(b)}x{len(b[0])}")
    columns = transpose(b)
    return [[sum(x * y for x, y in zip(row, col)) for col in columns] for row in a]`,
      imports: [],
      checks: [[`matmul(${lit(a)}, ${lit(b)})`, lit(matMul(a, b))], [`transpose(${lit(a)})`, lit(a[0].map((_, j) => a.map((r) => r[j])))]],
      demo: [`for row in matmul(${lit(a)}, ${lit(b)}):`, '    print(row)'],
    };
  },

  function temperatureTable(rng) {
    const lo = rng.int(-4, 2) * 10, step = rng.pick([5, 10]), hi = lo + step * rng.int(5, 9);
    return {
      code: `def celsius_to_fahrenheit(c):
    return c * 9 / 5 + 32


def print_table(start, stop, step):
    """Print a two-column conversion table from start to stop (inclusive)."""
    print(f"{'C':>6} {'F':>7}")
    for c in range(start, stop + 1, step):
        print(f"{c:>6} {celsius_to_fahrenheit(c):>7.1f}")`,
      imports: [],
      checks: [['celsius_to_fahrenheit(100)', '212.0'], [`celsius_to_fahrenheit(${lo})`, String(round((lo * 9) / 5 + 32, 4)).includes('.') ? round((lo * 9) / 5 + 32, 4) : `${round((lo * 9) / 5 + 32, 4)}.0`]],
      demo: [`print_table(${lo}, ${hi}, ${step})`],
    };
  },

  function flatten(rng) {
    const nested = `[1, [2, [3, ${rng.int(4, 9)}]], [], [[${rng.int(10, 20)}]]]`;
    const flat = nested.replace(/[[\]]/g, '').split(',').map((s) => s.trim()).filter(Boolean);
    return {
      code: `def flatten(items):
    """Yield the leaves of arbitrarily nested lists and tuples, depth first."""
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from flatten(item)
        else:
            yield item`,
      imports: [],
      checks: [[`list(flatten(${nested}))`, listRepr(flat)]],
      demo: [`print(list(flatten(${nested})))`],
    };
  },

  function histogram(rng) {
    const labels = rng.sample(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], rng.int(4, 7));
    const counts = labels.map(() => rng.int(0, 12));
    return {
      code: `def histogram(counts, char="#"):
    """Render {label: count} as one bar per line, labels right-aligned."""
    width = max(len(label) for label in counts)
    lines = []
    for label, n in counts.items():
        lines.append(f"{label:>{width}} | {char * n} {n}")
    return "\\n".join(lines)`,
      imports: [],
      checks: [[`histogram({${labels.map((l, i) => `'${l}': ${counts[i]}`).join(', ')}}).count("\\n")`, String(labels.length - 1)]],
      demo: [`print(histogram({${labels.map((l, i) => `'${l}': ${counts[i]}`).join(', ')}}))`],
    };
  },

  function csvTotals(rng) {
    const noun = rng.pick(['category', 'region', 'team', 'store']);
    return {
      code: `def totals_by_${noun}(path):
    """Sum the 'amount' column of a CSV file per '${noun}' column value."""
    totals = defaultdict(float)
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                totals[row["${noun}"]] += float(row["amount"])
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}: bad row {row!r}") from exc
    return dict(totals)`,
      imports: ['import csv', 'from collections import defaultdict'],
      checks: [],
      demo: ['import sys', '', 'if len(sys.argv) > 1:', `    for key, amount in sorted(totals_by_${noun}(sys.argv[1]).items()):`, '        print(f"{key}: {amount:.2f}")'],
    };
  },

  function fizzBuzz(rng) {
    const [a, b] = rng.pick([[3, 5], [2, 7], [3, 4], [4, 6], [5, 7]]);
    const [wa, wb] = rng.pick([['Fizz', 'Buzz'], ['Ping', 'Pong'], ['Tick', 'Tock'], ['Foo', 'Bar']]);
    const n = rng.int(12, 40);
    const f = (i) => (i % a === 0 && i % b === 0 ? wa + wb : i % a === 0 ? wa : i % b === 0 ? wb : String(i));
    return {
      code: `def ${wa.toLowerCase()}_${wb.toLowerCase()}(n):
    """'${wa}' for multiples of ${a}, '${wb}' for multiples of ${b}, both for multiples of both."""
    word = ""
    if n % ${a} == 0:
        word += "${wa}"
    if n % ${b} == 0:
        word += "${wb}"
    return word or str(n)`,
      imports: [],
      checks: [[`${wa.toLowerCase()}_${wb.toLowerCase()}(${n})`, pyStr(f(n))], [`${wa.toLowerCase()}_${wb.toLowerCase()}(${a * b})`, pyStr(wa + wb)]],
      demo: [`print(" ".join(${wa.toLowerCase()}_${wb.toLowerCase()}(i) for i in range(1, ${n + 1})))`],
    };
  },

  function palindrome(rng) {
    const yes = rng.pick(['A man, a plan, a canal: Panama', 'Never odd or even', 'Was it a car or a cat I saw?', 'Step on no pets', 'No lemon, no melon']);
    const no = rng.pick(['Hello there', 'Python is fun', 'Not a palindrome', 'Open the door']);
    return {
      code: `def is_palindrome(text):
    """True when text reads the same backwards, ignoring case, spaces and punctuation."""
    letters = [ch.lower() for ch in text if ch.isalnum()]
    return letters == letters[::-1]`,
      imports: [],
      checks: [[`is_palindrome(${pyStr(yes)})`, 'True'], [`is_palindrome(${pyStr(no)})`, 'False'], ['is_palindrome("")', 'True']],
      demo: [`print(is_palindrome(${pyStr(yes)}))`],
    };
  },

  function queueSim(rng) {
    const arrivals = sortedDistinct(rng, rng.int(4, 7), 0, 30);
    const service = rng.int(2, 6);
    let free = 0;
    const waits = arrivals.map((t) => {
      const start = Math.max(t, free);
      free = start + service;
      return start - t;
    });
    return {
      code: `def waiting_times(arrivals, service_time):
    """Single-server queue: how long each customer waits, given sorted arrival times."""
    queue = deque(arrivals)
    free_at = 0
    waits = []
    while queue:
        arrived = queue.popleft()
        start = max(arrived, free_at)
        waits.append(start - arrived)
        free_at = start + service_time
    return waits`,
      imports: ['from collections import deque'],
      checks: [[`waiting_times(${listRepr(arrivals)}, ${service})`, listRepr(waits)]],
      demo: [`print(waiting_times(${listRepr(arrivals)}, ${service}))`],
    };
  },
];

const MODULE_PURPOSES = ['Small numeric helpers', 'Utilities for the reporting scripts', 'Exercises from the weekly workshop',
  'Helpers used by the command-line tools', 'Reference implementations with tests', 'Text and list utilities',
  'Algorithms practice', 'Shared functions for the data pipeline'];

/** A Python module: docstring, imports, 2–4 definitions, then tests or a demo. */
export function pythonDocument(rng) {
  const picked = rng.sample(TEMPLATES, rng.int(2, 4)).map((t) => t(rng.fork()));
  const imports = [...new Set(picked.flatMap((p) => p.imports))];
  const testStyle = rng.int(0, 2);
  if (testStyle === 1) imports.push('import unittest');
  const stdlib = imports.filter((i) => i.startsWith('import ')).sort();
  const froms = imports.filter((i) => i.startsWith('from ')).sort();
  const more = rng.chance(0.5)
    ? `\n\nWritten for the ${rng.pick(['inventory', 'weather', 'billing', 'course', 'garden', 'transit'])} project; run this file to ${testStyle === 1 ? 'execute the tests' : 'see a short demo'}.\n`
    : '';
  let header = `"""${rng.pick(MODULE_PURPOSES)}.${more}"""`;
  if (stdlib.length + froms.length > 0) header += `\n\n${[...stdlib, ...froms].join('\n')}`;
  const parts = [header];
  parts.push(picked.map((p) => p.code).join('\n\n\n'));
  const checks = picked.filter((p) => p.checks.length > 0);
  if (testStyle === 0 && checks.length > 0) {
    parts.push(checks.map((p, i) => {
      const setup = (p.setup ?? []).map((l) => `    ${l}`);
      return [`def test_${i + 1}():`, ...setup, ...p.checks.map(([e, v]) => `    ${pyAssert(e, v)}`)].join('\n');
    }).join('\n\n\n'));
  } else if (testStyle === 1 && checks.length > 0) {
    const methods = checks.map((p, i) => {
      const setup = (p.setup ?? []).map((l) => `        ${l}`);
      return [`    def test_case_${i + 1}(self):`, ...setup, ...p.checks.map(([e, v]) => `        ${unittestAssert(e, v)}`)].join('\n');
    });
    parts.push(`class ${pascal(rng.pick(NOUNS))}Tests(unittest.TestCase):\n${methods.join('\n\n')}`);
    parts.push('if __name__ == "__main__":\n    unittest.main()');
    return parts.join('\n\n\n') + '\n';
  }
  const demo = picked.flatMap((p) => p.demo);
  parts.push(`if __name__ == "__main__":\n${demo.map((l) => (l === '' ? '' : `    ${l}`)).join('\n')}`);
  return parts.join('\n\n\n') + '\n';
}
