// Word pools and small text helpers shared by the generators. All lists are ours; names are common given names.

export const FIRST_NAMES = [
  'Ada', 'Amara', 'Ben', 'Bilal', 'Carmen', 'Chen', 'Dara', 'Diego', 'Elena', 'Emeka', 'Farah', 'Felix', 'Grace',
  'Gustavo', 'Hana', 'Hugo', 'Ines', 'Ivan', 'Jamal', 'Julia', 'Kenji', 'Kira', 'Lars', 'Leila', 'Luca', 'Maya',
  'Mateo', 'Mei', 'Nadia', 'Nikhil', 'Noor', 'Olga', 'Omar', 'Paula', 'Priya', 'Quinn', 'Rafael', 'Rosa', 'Sam',
  'Sara', 'Tariq', 'Tess', 'Uma', 'Victor', 'Vera', 'Wes', 'Yara', 'Yusuf', 'Zoe', 'Arjun', 'Beatriz', 'Colin',
  'Daniela', 'Erik', 'Fatima', 'Gabriel', 'Helen', 'Isaac', 'Jonas', 'Lena', 'Marta', 'Nico', 'Oscar', 'Petra',
  'Ravi', 'Sofia', 'Theo', 'Ula', 'Walter', 'Ximena', 'Yosef', 'Zain', 'Anika', 'Bruno', 'Clara', 'Dev', 'Eva',
];

export const LAST_NAMES = [
  'Abara', 'Bauer', 'Castillo', 'Dubois', 'Eriksen', 'Fischer', 'Garcia', 'Haddad', 'Ito', 'Jensen', 'Kowalski',
  'Lindqvist', 'Mendes', 'Nakamura', 'Okafor', 'Petrov', 'Quintero', 'Rossi', 'Santos', 'Tanaka', 'Usman', 'Varga',
  'Weber', 'Xu', 'Yilmaz', 'Zhang', 'Moreau', 'Novak', 'Olsen', 'Park', 'Reyes', 'Silva', 'Torres', 'Walsh', 'Kim',
];

export const CITIES = [
  'Lisbon', 'Oslo', 'Nairobi', 'Osaka', 'Lima', 'Krakow', 'Porto', 'Dublin', 'Seville', 'Tallinn', 'Accra', 'Hanoi',
  'Bergen', 'Montreal', 'Valparaiso', 'Ljubljana', 'Adelaide', 'Kyoto', 'Marseille', 'Edinburgh', 'Cork', 'Turin',
  'Gdansk', 'Quito', 'Zanzibar', 'Tampere', 'Leipzig', 'Bologna', 'Halifax', 'Cusco',
];

/** Syllables for invented place names, so stories and reports never describe a real town wrongly. */
const PLACE_HEADS = ['Ash', 'Bram', 'Cal', 'Dun', 'Elm', 'Fen', 'Glen', 'Hol', 'Ivy', 'Kel', 'Lark', 'Mar', 'Nor',
  'Oak', 'Pem', 'Red', 'Sel', 'Thorn', 'Wil', 'Yar', 'Brook', 'Stone', 'Win', 'Hart'];
const PLACE_TAILS = ['ford', 'wick', 'by', 'ton', 'mere', 'field', 'dale', 'haven', 'stead', 'moor', 'bury', 'well',
  'cliff', 'gate', 'holm', 'ridge', 'wood', 'port'];
export function placeName(rng) {
  return rng.pick(PLACE_HEADS) + rng.pick(PLACE_TAILS);
}

export const PRODUCTS = [
  ['notebook', 250], ['pencil', 45], ['mug', 799], ['towel', 1150], ['loaf of bread', 320], ['jar of honey', 675],
  ['bag of apples', 499], ['lamp', 2499], ['pair of socks', 600], ['ticket', 1250], ['bottle of water', 120],
  ['kilogram of rice', 289], ['box of tea', 455], ['plant pot', 899], ['phone case', 1599], ['map', 725],
  ['bicycle bell', 980], ['packet of seeds', 175], ['scarf', 1875], ['sandwich', 550], ['coffee', 340],
  ['paintbrush', 260], ['backpack', 4200], ['umbrella', 1399], ['chess set', 3150],
];

export const FOODS = ['lentils', 'rice', 'onions', 'garlic', 'tomatoes', 'spinach', 'chickpeas', 'carrots', 'potatoes',
  'mushrooms', 'peppers', 'ginger', 'lemons', 'eggs', 'flour', 'butter', 'yogurt', 'oats', 'beans', 'cabbage',
  'cumin', 'paprika', 'basil', 'parsley', 'cheese', 'noodles', 'squash', 'leeks', 'peas', 'celery'];

export const ANIMALS = ['fox', 'heron', 'otter', 'badger', 'owl', 'hare', 'swallow', 'beetle', 'trout', 'deer', 'crow',
  'hedgehog', 'wren', 'seal', 'moth', 'goat', 'lynx', 'kestrel', 'toad', 'squirrel'];

export const COLORS = ['red', 'amber', 'green', 'blue', 'grey', 'white', 'black', 'ochre', 'violet', 'silver', 'teal',
  'copper', 'pale yellow', 'dark green', 'rust-colored'];

export const JOBS = ['baker', 'nurse', 'engineer', 'teacher', 'carpenter', 'librarian', 'pilot', 'farmer', 'chemist',
  'translator', 'mechanic', 'gardener', 'programmer', 'architect', 'fisher', 'tailor', 'surveyor', 'musician',
  'bookbinder', 'electrician', 'beekeeper', 'cartographer', 'potter', 'ferry captain'];

export const WEEKDAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
export const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September',
  'October', 'November', 'December'];
export const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export const OBJECTS = ['key', 'letter', 'lantern', 'compass', 'notebook', 'violin', 'kite', 'clock', 'photograph',
  'teapot', 'telescope', 'bicycle', 'recipe card', 'radio', 'umbrella', 'blanket', 'seed packet', 'map'];

// ── Text helpers ───────────────────────────────────────────────────────────────────────────────────────────────

export function cap(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** "a", "a and b", "a, b and c". */
export function listJoin(items, conj = 'and') {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} ${conj} ${items[items.length - 1]}`;
}

export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}

/** Integer cents as "$12.34" (integer arithmetic, so no binary rounding surprises). */
export function money(cents, symbol = '$') {
  const sign = cents < 0 ? '-' : '';
  const c = Math.abs(cents);
  return `${sign}${symbol}${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;
}

/** Groups thousands with commas, without locale-dependent formatting. */
export function thousands(n) {
  const s = String(Math.abs(n));
  const out = s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return n < 0 ? `-${out}` : out;
}

/** A number rounded to d decimals, trailing zeros removed ("2.50" → "2.5", "3.00" → "3"). */
export function round(x, d) {
  const s = x.toFixed(d);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

export function gcd(a, b) {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b) [a, b] = [b, a % b];
  return a;
}

export function article(word) {
  return /^[aeiou]/i.test(word) ? `an ${word}` : `a ${word}`;
}

export function person(rng) {
  return `${rng.pick(FIRST_NAMES)} ${rng.pick(LAST_NAMES)}`;
}

/** Two-digit clock time from minutes since midnight. */
export function clock(minutes) {
  const h = Math.floor(minutes / 60) % 24;
  const m = minutes % 60;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
}

/** 1 → "1st", 2 → "2nd", 11 → "11th", 22 → "22nd". */
export function ordinal(n) {
  const t = n % 100;
  if (t >= 11 && t <= 13) return `${n}th`;
  return `${n}${['th', 'st', 'nd', 'rd'][n % 10] ?? 'th'}`;
}

/** English plural of a noun phrase ("box of tea" → "boxes of tea", "loaf of bread" → "loaves of bread"). */
export function pluralNoun(phrase) {
  const at = phrase.indexOf(' of ');
  if (at > 0) return pluralNoun(phrase.slice(0, at)) + phrase.slice(at);
  if (phrase.endsWith('loaf')) return `${phrase.slice(0, -1)}ves`;
  if (/(s|x|sh|ch)$/.test(phrase)) return `${phrase}es`;
  if (/[^aeiou]y$/.test(phrase)) return `${phrase.slice(0, -1)}ies`;
  return `${phrase}s`;
}
