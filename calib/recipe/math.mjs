// Math problems with step-by-step worked solutions. Every number in a solution is computed here, so the worked
// steps are correct by construction.

import { CITIES, FIRST_NAMES, PRODUCTS, article, cap, gcd, listJoin, money, ordinal, plural, pluralNoun, round, thousands } from './words.mjs';

function frac(n, d) {
  if (d < 0) [n, d] = [-n, -d];
  const g = gcd(n, d) || 1;
  n /= g;
  d /= g;
  return d === 1 ? String(n) : `${n}/${d}`;
}

function signed(k, first = false) {
  if (first) return k < 0 ? `-${Math.abs(k)}` : String(k);
  return k < 0 ? `- ${Math.abs(k)}` : `+ ${k}`;
}

function paren(k) {
  return k < 0 ? `(${k})` : String(k);
}

function term(coef, v, first = false) {
  const a = Math.abs(coef);
  const body = a === 1 ? v : `${a}${v}`;
  if (first) return coef < 0 ? `-${body}` : body;
  return coef < 0 ? `- ${body}` : `+ ${body}`;
}

const shopping = (rng) => {
  const name = rng.pick(FIRST_NAMES);
  const [[a, pa], [b, pb]] = rng.sample(PRODUCTS, 2);
  const na = rng.int(2, 9);
  const nb = rng.int(1, 6);
  const ta = na * pa;
  const tb = nb * pb;
  const total = ta + tb;
  const bill = Math.ceil((total + 1) / 1000) * 1000 + (rng.chance(0.3) ? 1000 : 0);
  return {
    q: `${name} buys ${na} ${pluralNoun(a)} at ${money(pa)} each and ${plural(nb, b, pluralNoun(b))} at ${money(pb)} each, and pays with ${money(bill)}. How much change does ${name} get?`,
    steps: [
      `Cost of the ${pluralNoun(a)}: ${na} × ${money(pa)} = ${money(ta)}.`,
      `Cost of the ${nb === 1 ? b : pluralNoun(b)}: ${nb} × ${money(pb)} = ${money(tb)}.`,
      `Total: ${money(ta)} + ${money(tb)} = ${money(total)}.`,
      `Change: ${money(bill)} - ${money(total)} = ${money(bill - total)}.`,
    ],
    answer: `${money(bill - total)}`,
  };
};

const travel = (rng) => {
  const [from, to] = rng.sample(CITIES, 2);
  const speed = rng.int(8, 24) * 5;
  const hours = rng.int(1, 6);
  const minutes = rng.pick([0, 15, 20, 30, 40, 45]);
  const dist = speed * hours + (speed * minutes) / 60;
  const t = minutes ? `${hours} hours and ${minutes} minutes` : plural(hours, 'hour');
  if (rng.chance(0.5)) {
    return {
      q: `A train from ${from} to ${to} travels at an average speed of ${speed} km/h for ${t}. How far does it go?`,
      steps: [
        minutes ? `Convert the time to hours: ${minutes} minutes = ${minutes}/60 = ${round(minutes / 60, 4)} hours, so the trip takes ${round(hours + minutes / 60, 4)} hours.` : `The trip takes ${hours} hours.`,
        `Distance = speed × time = ${speed} × ${round(hours + minutes / 60, 4)} = ${round(dist, 2)} km.`,
      ],
      answer: `${round(dist, 2)} km`,
    };
  }
  return {
    q: `The road from ${from} to ${to} is ${round(dist, 2)} km long. A bus covers it in ${t}. What is its average speed?`,
    steps: [
      minutes ? `Time in hours: ${hours} + ${minutes}/60 = ${round(hours + minutes / 60, 4)} h.` : `Time in hours: ${hours} h.`,
      `Average speed = distance / time = ${round(dist, 2)} / ${round(hours + minutes / 60, 4)} = ${speed} km/h.`,
    ],
    answer: `${speed} km/h`,
  };
};

const workRate = (rng) => {
  const [p, q] = rng.sample(FIRST_NAMES, 2);
  const a = rng.int(2, 9);
  let b = rng.int(2, 12);
  if (b === a) b += 1;
  const num = a * b;
  const den = a + b;
  const task = rng.pick(['paint a fence', 'sort the library returns', 'weed the garden', 'pack the orders', 'proofread the report']);
  return {
    q: `${p} can ${task} alone in ${a} hours; ${q} needs ${b} hours. How long does it take them working together?`,
    steps: [
      `${p} does 1/${a} of the job per hour and ${q} does 1/${b}.`,
      `Together: 1/${a} + 1/${b} = ${b}/${num} + ${a}/${num} = ${frac(den, num)} of the job per hour.`,
      `Time = 1 / (${frac(den, num)}) = ${frac(num, den)} hours ≈ ${round(num / den, 2)} hours, about ${Math.round((num / den) * 60)} minutes.`,
    ],
    answer: `${frac(num, den)} hours`,
  };
};

const discount = (rng) => {
  const [item] = rng.pick(PRODUCTS);
  const price = rng.int(20, 400) * 100 + rng.pick([0, 50, 99]);
  const off = rng.pick([10, 15, 20, 25, 30, 40]);
  const tax = rng.pick([5, 6, 8, 10, 20]);
  const saved = Math.round((price * off) / 100);
  const after = price - saved;
  const taxC = Math.round((after * tax) / 100);
  return {
    q: `${cap(article(item))} costs ${money(price)}. It is on sale at ${off}% off, and a ${tax}% sales tax is added to the sale price. What is the final price?`,
    steps: [
      `Discount: ${off}% of ${money(price)} = ${money(saved)}.`,
      `Sale price: ${money(price)} - ${money(saved)} = ${money(after)}.`,
      `Tax: ${tax}% of ${money(after)} = ${money(taxC)} (rounded to the cent).`,
      `Final price: ${money(after)} + ${money(taxC)} = ${money(after + taxC)}.`,
    ],
    answer: money(after + taxC),
  };
};

const compound = (rng) => {
  const principal = rng.int(5, 80) * 100;
  const rate = rng.pick([2, 3, 4, 5, 6, 7.5]);
  const years = rng.int(2, 5);
  const steps = [`Each year the balance is multiplied by 1 + ${rate}/100 = ${round(1 + rate / 100, 4)}.`];
  let bal = principal * 100;
  for (let y = 1; y <= years; y++) {
    const next = Math.round(bal * (1 + rate / 100));
    steps.push(`After year ${y}: ${money(bal)} × ${round(1 + rate / 100, 4)} = ${money(next)}.`);
    bal = next;
  }
  steps.push(`Interest earned: ${money(bal)} - ${money(principal * 100)} = ${money(bal - principal * 100)}.`);
  return {
    q: `${money(principal * 100)} is deposited at ${rate}% interest compounded yearly (rounded to the cent each year). What is the balance after ${years} years?`,
    steps,
    answer: money(bal),
  };
};

const linear = (rng) => {
  const x = rng.int(-12, 15);
  let a = rng.int(2, 9) * (rng.chance(0.2) ? -1 : 1);
  const b = rng.int(-30, 30) || 7;
  const c = a * x + b;
  const v = rng.pick(['x', 'y', 'n', 't']);
  return {
    q: `Solve for ${v}: ${a}${v} ${signed(b)} = ${c}.`,
    steps: [
      `${b > 0 ? 'Subtract' : 'Add'} ${Math.abs(b)} ${b > 0 ? 'from' : 'to'} both sides: ${a}${v} = ${c} ${signed(-b)} = ${c - b}.`,
      `Divide both sides by ${a}: ${v} = ${c - b} / ${paren(a)} = ${x}.`,
      `Check: ${a} × ${paren(x)} ${signed(b)} = ${a * x + b}. ✓`,
    ],
    answer: `${v} = ${x}`,
  };
};

const system2 = (rng) => {
  const x = rng.int(-6, 9);
  const y = rng.int(-6, 9);
  let a1 = rng.int(1, 5), b1 = rng.int(1, 5), a2 = rng.int(1, 5), b2 = -rng.int(1, 5);
  if (a1 * b2 - a2 * b1 === 0) b2 -= 1;
  const c1 = a1 * x + b1 * y;
  const c2 = a2 * x + b2 * y;
  // Eliminate x: multiply eq1 by a2 and eq2 by a1, subtract.
  const yCoef = a2 * b1 - a1 * b2;
  const rhs = a2 * c1 - a1 * c2;
  return {
    q: `Solve the system:\n  ${term(a1, 'x', true)} ${term(b1, 'y')} = ${c1}\n  ${term(a2, 'x', true)} ${term(b2, 'y')} = ${c2}`,
    steps: [
      `Multiply the first equation by ${a2} and the second by ${a1} so that x has the same coefficient: ${term(a1 * a2, 'x', true)} ${term(b1 * a2, 'y')} = ${c1 * a2} and ${term(a1 * a2, 'x', true)} ${term(b2 * a1, 'y')} = ${c2 * a1}.`,
      `Subtract the second from the first: ${yCoef}y = ${rhs}, so y = ${rhs} / ${yCoef} = ${y}.`,
      `Substitute into the first equation: ${term(a1, 'x', true)} ${signed(b1 * y)} = ${c1}, so ${term(a1, 'x', true)} = ${c1 - b1 * y}${a1 === 1 ? '' : ` and x = ${x}`}.`,
      `Check with the second equation: ${a2} × ${paren(x)} ${signed(b2)} × ${paren(y)} = ${a2 * x + b2 * y}. ✓`,
    ],
    answer: `x = ${x}, y = ${y}`,
  };
};

const quadratic = (rng) => {
  const r1 = rng.pick([-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const r2 = rng.pick([-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const s = r1 + r2;
  const p = r1 * r2;
  const disc = s * s - 4 * p;
  const eq = `x² ${term(-s, 'x')} ${signed(p)} = 0`.replace('+ 0x ', '').replace(' + 0 =', ' =');
  const steps = rng.chance(0.5)
    ? [
        `Look for two numbers whose product is ${p} (the constant term) and whose sum is ${s} (minus the x coefficient): ${r1} and ${r2}.`,
        `So x² ${term(-s, 'x')} ${signed(p)} = (x ${signed(-r1)})(x ${signed(-r2)}).`,
        `A product is zero when a factor is zero: x = ${r1} or x = ${r2}.`,
      ]
    : [
        `Here a = 1, b = ${-s}, c = ${p}.`,
        `Discriminant: b² - 4ac = ${s * s} ${signed(-4 * p)} = ${disc}, and √${disc} = ${Math.abs(r1 - r2)}.`,
        `x = (${s} ± ${Math.abs(r1 - r2)}) / 2, which gives x = ${Math.max(r1, r2)} or x = ${Math.min(r1, r2)}.`,
      ];
  return { q: `Solve ${eq}.`, steps, answer: r1 === r2 ? `x = ${r1} (a double root)` : `x = ${r1} or x = ${r2}` };
};

const fractions = (rng) => {
  const b = rng.int(2, 12), d = rng.int(2, 12);
  const a = rng.int(1, b - 1 || 1), c = rng.int(1, d - 1 || 1);
  const l = (b * d) / gcd(b, d);
  const n = a * (l / b) + c * (l / d);
  return {
    q: `Add ${a}/${b} + ${c}/${d} and simplify.`,
    steps: [
      `The least common denominator of ${b} and ${d} is ${l}.`,
      `${a}/${b} = ${a * (l / b)}/${l} and ${c}/${d} = ${c * (l / d)}/${l}.`,
      `Sum: ${a * (l / b) + c * (l / d)}/${l}${gcd(n, l) > 1 ? `, and dividing top and bottom by ${gcd(n, l)} gives ${frac(n, l)}` : ', which is already in lowest terms'}.`,
    ],
    answer: frac(n, l),
  };
};

const euclid = (rng) => {
  const g = rng.int(2, 30);
  let a = g * rng.int(3, 40), b = g * rng.int(2, 30);
  if (a < b) [a, b] = [b, a];
  if (a === b) a += g;
  const steps = [];
  let x = a, y = b;
  while (y) {
    steps.push(`${x} = ${Math.floor(x / y)} × ${y} + ${x % y}`);
    [x, y] = [y, x % y];
  }
  steps.push(`The last non-zero remainder is ${x}, so gcd(${a}, ${b}) = ${x}.`);
  steps.push(`Then lcm(${a}, ${b}) = ${a} × ${b} / ${x} = ${thousands((a * b) / x)}.`);
  return { q: `Find the greatest common divisor and the least common multiple of ${a} and ${b} with Euclid's algorithm.`, steps, answer: `gcd ${x}, lcm ${thousands((a * b) / x)}` };
};

const factorize = (rng) => {
  const primes = [2, 2, 2, 3, 3, 5, 7, 11, 13, 17, 19, 23];
  let n = 1;
  const k = rng.int(3, 6);
  for (let i = 0; i < k && n < 5000; i++) n *= rng.pick(primes);
  if (n < 12) n *= 6;
  const steps = [];
  const factors = [];
  let m = n;
  for (let p = 2; m > 1; p++) {
    while (m % p === 0) {
      steps.push(`${m} ÷ ${p} = ${m / p}`);
      factors.push(p);
      m /= p;
    }
  }
  const grouped = [...new Set(factors)].map((p) => {
    const e = factors.filter((f) => f === p).length;
    return e > 1 ? `${p}^${e}` : String(p);
  });
  const product = factors.join(' × ');
  steps.push(`So ${n} = ${product}${grouped.join(' × ') === product ? '' : ` = ${grouped.join(' × ')}`}.`);
  return { q: `Write ${thousands(n)} as a product of primes.`, steps, answer: grouped.join(' × ') };
};

const geometry = (rng) => {
  const kind = rng.int(0, 2);
  if (kind === 0) {
    const w = rng.int(3, 40), h = rng.int(3, 40);
    return {
      q: `A rectangular garden is ${w} m long and ${h} m wide. Find its area and the length of fence needed to go around it.`,
      steps: [`Area = length × width = ${w} × ${h} = ${w * h} m².`, `Perimeter = 2 × (${w} + ${h}) = ${2 * (w + h)} m.`],
      answer: `${w * h} m² and ${2 * (w + h)} m`,
    };
  }
  if (kind === 1) {
    const r = rng.int(2, 25);
    return {
      q: `A circular table has a radius of ${r} cm. Find its area and circumference, using π ≈ 3.14159.`,
      steps: [`Area = πr² = 3.14159 × ${r}² = 3.14159 × ${r * r} ≈ ${round(3.14159 * r * r, 2)} cm².`, `Circumference = 2πr = 2 × 3.14159 × ${r} ≈ ${round(2 * 3.14159 * r, 2)} cm.`],
      answer: `about ${round(3.14159 * r * r, 1)} cm² and ${round(2 * 3.14159 * r, 1)} cm`,
    };
  }
  const [a, b, c] = rng.pick([[3, 4, 5], [5, 12, 13], [8, 15, 17], [7, 24, 25], [20, 21, 29]]);
  const s = rng.int(1, 4);
  return {
    q: `A ladder leans against a wall. Its foot is ${a * s} m from the wall and it reaches ${b * s} m up the wall. How long is the ladder?`,
    steps: [`By Pythagoras, length² = ${a * s}² + ${b * s}² = ${a * a * s * s} + ${b * b * s * s} = ${c * c * s * s}.`, `Length = √${c * c * s * s} = ${c * s} m.`],
    answer: `${c * s} m`,
  };
};

const stats = (rng) => {
  const n = rng.int(5, 9);
  const xs = Array.from({ length: n }, () => rng.int(10, 99));
  const sum = xs.reduce((a, b) => a + b, 0);
  const sorted = xs.slice().sort((a, b) => a - b);
  const med = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  const what = rng.pick(['test scores', 'daily temperatures in °F', 'minutes spent on homework', 'visitors per hour', 'parcel weights in kg']);
  return {
    q: `Find the mean and the median of these ${what}: ${xs.join(', ')}.`,
    steps: [
      `Sum: ${xs.join(' + ')} = ${sum}.`,
      `Mean: ${sum} / ${n} = ${round(sum / n, 2)}.`,
      `Sorted: ${sorted.join(', ')}.`,
      n % 2 ? `With ${n} values the median is the middle one, the ${ordinal((n + 1) / 2)}: ${med}.` : `With ${n} values the median is the average of the ${ordinal(n / 2)} and ${ordinal(n / 2 + 1)}: (${sorted[n / 2 - 1]} + ${sorted[n / 2]}) / 2 = ${med}.`,
    ],
    answer: `mean ${round(sum / n, 2)}, median ${med}`,
  };
};

const CONVERSIONS = [
  ['km', 'miles', 1 / 1.609344, '1 mile = 1.609344 km, so divide by 1.609344'],
  ['miles', 'km', 1.609344, '1 mile = 1.609344 km, so multiply by 1.609344'],
  ['kg', 'pounds', 1 / 0.45359237, '1 pound = 0.45359237 kg, so divide by 0.45359237'],
  ['pounds', 'kg', 0.45359237, '1 pound = 0.45359237 kg, so multiply by 0.45359237'],
  ['inches', 'cm', 2.54, '1 inch = 2.54 cm exactly'],
  ['feet', 'metres', 0.3048, '1 foot = 0.3048 m exactly'],
  ['US gallons', 'litres', 3.785411784, '1 US gallon = 3.785411784 litres'],
  ['litres', 'US gallons', 1 / 3.785411784, '1 US gallon = 3.785411784 litres, so divide by 3.785411784'],
];

const conversion = (rng) => {
  const k = rng.int(0, CONVERSIONS.length + 2);
  if (k === CONVERSIONS.length) {
    const c = rng.int(-20, 40);
    return {
      q: `Convert ${c} °C to degrees Fahrenheit.`,
      steps: [`F = C × 9/5 + 32.`, `${c} × 9/5 = ${round((c * 9) / 5, 2)}; adding 32 gives ${round((c * 9) / 5 + 32, 2)}.`],
      answer: `${round((c * 9) / 5 + 32, 2)} °F`,
    };
  }
  if (k === CONVERSIONS.length + 1) {
    const f = rng.int(0, 110);
    return {
      q: `Convert ${f} °F to degrees Celsius.`,
      steps: [`C = (F - 32) × 5/9.`, `${f} - 32 = ${f - 32}; ${f - 32} × 5/9 ≈ ${round(((f - 32) * 5) / 9, 2)}.`],
      answer: `about ${round(((f - 32) * 5) / 9, 1)} °C`,
    };
  }
  if (k === CONVERSIONS.length + 2) {
    const h = rng.int(1, 9), m = rng.int(0, 59), s = rng.int(0, 59);
    return {
      q: `How many seconds are there in ${h} h ${m} min ${s} s?`,
      steps: [`${h} h = ${h} × 3600 = ${h * 3600} s.`, `${m} min = ${m} × 60 = ${m * 60} s.`, `Total: ${h * 3600} + ${m * 60} + ${s} = ${thousands(h * 3600 + m * 60 + s)} s.`],
      answer: `${thousands(h * 3600 + m * 60 + s)} seconds`,
    };
  }
  const [from, to, factor, rule] = CONVERSIONS[k];
  const x = rng.int(2, 250);
  return {
    q: `Convert ${x} ${from} to ${to}.`,
    steps: [`${cap(rule)}.`, `${x} ${from} ≈ ${round(x * factor, 3)} ${to}.`],
    answer: `about ${round(x * factor, 2)} ${to}`,
  };
};

const longMultiply = (rng) => {
  const a = rng.int(112, 989), b = rng.int(12, 98);
  const tens = Math.floor(b / 10) * 10, ones = b % 10;
  return {
    q: `Compute ${a} × ${b} without a calculator.`,
    steps: [
      `Split ${b} into ${tens} + ${ones}.`,
      `${a} × ${tens} = ${thousands(a * tens)}.`,
      `${a} × ${ones} = ${thousands(a * ones)}.`,
      `Add: ${thousands(a * tens)} + ${thousands(a * ones)} = ${thousands(a * b)}.`,
    ],
    answer: thousands(a * b),
  };
};

const sequence = (rng) => {
  const a = rng.int(-5, 20), d = rng.int(2, 9), n = rng.int(8, 40);
  const an = a + (n - 1) * d;
  return {
    q: `An arithmetic sequence starts ${a}, ${a + d}, ${a + 2 * d}, ... Find the ${ordinal(n)} term and the sum of the first ${n} terms.`,
    steps: [
      `The common difference is d = ${d}.`,
      `a_n = a_1 + (n - 1)d = ${a} + ${n - 1} × ${d} = ${an}.`,
      `S_n = n(a_1 + a_n)/2 = ${n} × (${a} + ${an}) / 2 = ${thousands((n * (a + an)) / 2)}.`,
    ],
    answer: `a_${n} = ${an}, S_${n} = ${thousands((n * (a + an)) / 2)}`,
  };
};

const probability = (rng) => {
  const colors = rng.sample(['red', 'blue', 'green', 'yellow', 'white'], 3);
  const counts = colors.map(() => rng.int(2, 9));
  const total = counts.reduce((a, b) => a + b, 0);
  const i = rng.int(0, 2);
  const p2 = counts[i] * (counts[i] - 1);
  const q2 = total * (total - 1);
  return {
    q: `A bag holds ${listJoin(colors.map((c, j) => `${counts[j]} ${c}`))} marbles. Two are drawn without replacement. What is the probability that both are ${colors[i]}?`,
    steps: [
      `There are ${total} marbles, ${counts[i]} of them ${colors[i]}.`,
      `First draw: ${counts[i]}/${total}. Second draw, given the first was ${colors[i]}: ${counts[i] - 1}/${total - 1}.`,
      `Multiply: ${counts[i]}/${total} × ${counts[i] - 1}/${total - 1} = ${p2}/${q2} = ${frac(p2, q2)} ≈ ${round(p2 / q2, 4)}.`,
    ],
    answer: frac(p2, q2),
  };
};

const PROBLEMS = [shopping, travel, workRate, discount, compound, linear, system2, quadratic, fractions, euclid,
  factorize, geometry, stats, conversion, longMultiply, sequence, probability];

/** One problem of a random kind, for other generators (tutoring dialogues). */
export function mathProblem(rng) {
  return rng.pick(PROBLEMS)(rng);
}

const STYLES = [
  (p, i) => `Problem ${i}. ${p.q}\n\nSolution.\n${p.steps.join('\n')}\nAnswer: ${p.answer}.`,
  (p, i) => `Q${i}: ${p.q}\nA: ${p.steps.join(' ')} The answer is ${p.answer}.`,
  (p, i) => `### Exercise ${i}\n\n${p.q}\n\n${p.steps.map((s, k) => `${k + 1}. ${s}`).join('\n')}\n\n**Answer:** ${p.answer}`,
  (p) => `Question: ${p.q}\nWorking:\n${p.steps.map((s) => `  - ${s}`).join('\n')}\nSo the result is ${p.answer}.`,
];

const HEADINGS = ['Worked examples', 'Practice set with solutions', 'Homework solutions', 'Review problems',
  'Step-by-step solutions', 'Exercises and answers', 'Math notes'];

/** A document of several worked problems, about 600–3000 characters. */
export function mathDocument(rng) {
  const style = rng.pick(STYLES);
  const focus = rng.chance(0.5) ? rng.pick(PROBLEMS) : null;
  const parts = [`${rng.pick(HEADINGS)}${rng.chance(0.5) ? ` (set ${rng.int(1, 40)})` : ''}`];
  const n = rng.int(3, 7);
  for (let i = 1; i <= n; i++) parts.push(style((focus && rng.chance(0.6) ? focus : rng.pick(PROBLEMS))(rng), i));
  return parts.join('\n\n') + '\n';
}
