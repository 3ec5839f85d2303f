// C, Go, Rust, SQL and shell sources from templates.

import { NOUNS, THINGS, intList, listRepr, pascal, primesUpTo, sortedDistinct } from './code-common.mjs';
import { CITIES, FIRST_NAMES, JOBS, LAST_NAMES, gcd, round } from './words.mjs';

// ── C ──────────────────────────────────────────────────────────────────────────────────────────────────────────

const C_PARTS = [
  (rng) => {
    const xs = intList(rng, rng.int(5, 9), -20, 90);
    const sum = xs.reduce((a, b) => a + b, 0);
    return {
      includes: ['stdio.h', 'stddef.h'],
      code: `/* Sum and maximum of an int array; n must be at least 1 for the maximum. */
static long sum_ints(const int *values, size_t n)
{
    long total = 0;
    for (size_t i = 0; i < n; i++)
        total += values[i];
    return total;
}

static int max_int(const int *values, size_t n)
{
    int best = values[0];
    for (size_t i = 1; i < n; i++)
        if (values[i] > best)
            best = values[i];
    return best;
}`,
      main: `    int data[] = {${xs.join(', ')}};
    size_t n = sizeof data / sizeof data[0];
    printf("sum = %ld, max = %d\\n", sum_ints(data, n), max_int(data, n)); /* ${sum}, ${Math.max(...xs)} */`,
    };
  },
  (rng) => {
    const a = rng.int(20, 900), b = rng.int(20, 900);
    return {
      includes: ['stdio.h'],
      code: `/* Greatest common divisor by repeated remainders. */
static unsigned gcd(unsigned a, unsigned b)
{
    while (b != 0) {
        unsigned r = a % b;
        a = b;
        b = r;
    }
    return a;
}`,
      main: `    printf("gcd(%u, %u) = %u\\n", ${a}u, ${b}u, gcd(${a}u, ${b}u)); /* ${gcd(a, b)} */`,
    };
  },
  (rng) => {
    const word = rng.pick(THINGS);
    return {
      includes: ['stdio.h', 'string.h'],
      code: `/* Reverse a NUL-terminated string in place. */
static void reverse(char *s)
{
    size_t i = 0, j = strlen(s);
    while (j > i + 1) {
        char tmp = s[i];
        s[i++] = s[--j];
        s[j] = tmp;
    }
}`,
      main: `    char word[] = "${word}";
    reverse(word);
    printf("%s\\n", word); /* ${[...word].reverse().join('')} */`,
    };
  },
  (rng) => {
    const xs = intList(rng, rng.int(6, 10), 0, 99);
    return {
      includes: ['stdio.h', 'stddef.h'],
      code: `/* Insertion sort: stable, O(n^2), fast for short or nearly sorted arrays. */
static void insertion_sort(int *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        int key = a[i];
        size_t j = i;
        while (j > 0 && a[j - 1] > key) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = key;
    }
}`,
      main: `    int values[] = {${xs.join(', ')}};
    size_t count = sizeof values / sizeof values[0];
    insertion_sort(values, count);
    for (size_t i = 0; i < count; i++)
        printf("%d%c", values[i], i + 1 < count ? ' ' : '\\n'); /* ${xs.slice().sort((a, b) => a - b).join(' ')} */`,
    };
  },
  (rng) => {
    const [x1, y1, x2, y2] = intList(rng, 4, -10, 10);
    return {
      includes: ['stdio.h', 'math.h'],
      code: `struct point {
    double x;
    double y;
};

/* Euclidean distance between two points. */
static double distance(struct point a, struct point b)
{
    double dx = a.x - b.x, dy = a.y - b.y;
    return sqrt(dx * dx + dy * dy);
}`,
      main: `    struct point p = {${x1}, ${y1}}, q = {${x2}, ${y2}};
    printf("%.3f\\n", distance(p, q)); /* ${Math.hypot(x1 - x2, y1 - y2).toFixed(3)} */`,
    };
  },
  (rng) => {
    const lo = rng.pick([0, -40, -20]), step = rng.pick([10, 20]);
    return {
      includes: ['stdio.h'],
      code: `#define LOWER ${lo}
#define UPPER ${lo + step * rng.int(6, 10)}
#define STEP ${step}

/* Print a Fahrenheit-to-Celsius table from LOWER to UPPER. */
static void print_table(void)
{
    for (int f = LOWER; f <= UPPER; f += STEP)
        printf("%4d %7.1f\\n", f, (5.0 / 9.0) * (f - 32));
}`,
      main: '    print_table();',
    };
  },
  (rng) => {
    const n = rng.int(3, 6);
    const names = rng.sample(THINGS, n);
    return {
      includes: ['stdio.h', 'stdlib.h', 'string.h'],
      code: `struct node {
    char name[32];
    struct node *next;
};

/* Push a copy of name at the head of the list; returns the new head, or NULL when out of memory. */
static struct node *push(struct node *head, const char *name)
{
    struct node *n = malloc(sizeof *n);
    if (n == NULL)
        return NULL;
    strncpy(n->name, name, sizeof n->name - 1);
    n->name[sizeof n->name - 1] = '\\0';
    n->next = head;
    return n;
}

static void free_list(struct node *head)
{
    while (head != NULL) {
        struct node *next = head->next;
        free(head);
        head = next;
    }
}`,
      main: `    struct node *list = NULL;
    const char *names[] = {${names.map((s) => `"${s}"`).join(', ')}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct node *head = push(list, names[i]);
        if (head == NULL) {
            free_list(list);
            return 1;
        }
        list = head;
    }
    for (struct node *p = list; p != NULL; p = p->next)
        printf("%s\\n", p->name);
    free_list(list);`,
    };
  },
  (rng) => {
    const text = rng.pick(['hello world', 'the rain in spain', 'mississippi', 'banana bread', 'programming in c']);
    const vowels = [...text].filter((c) => 'aeiou'.includes(c)).length;
    return {
      includes: ['stdio.h', 'ctype.h'],
      code: `/* Count vowels (a, e, i, o, u; either case) in a string. */
static int count_vowels(const char *s)
{
    int n = 0;
    for (; *s; s++) {
        switch (tolower((unsigned char)*s)) {
        case 'a': case 'e': case 'i': case 'o': case 'u':
            n++;
            break;
        default:
            break;
        }
    }
    return n;
}`,
      main: `    printf("%d\\n", count_vowels("${text}")); /* ${vowels} */`,
    };
  },
];

export function cDocument(rng) {
  const parts = rng.sample(C_PARTS, rng.int(2, 4)).map((p) => p(rng.fork()));
  const includes = [...new Set(parts.flatMap((p) => p.includes))].sort();
  const file = `${rng.pick(['util', 'exercise', 'lab', 'demo', 'tools'])}${rng.int(1, 9)}.c`;
  return `/*
 * ${file} - ${rng.pick(['small C exercises', 'helpers and a test driver', 'examples for the systems course', 'practice programs'])}
 * Build: cc -std=c99 -Wall -O2 -o ${file.slice(0, -2)} ${file}${includes.includes('math.h') ? ' -lm' : ''}
 */
${includes.map((i) => `#include <${i}>`).join('\n')}

${parts.map((p) => p.code).join('\n\n')}

int main(void)
{
${parts.map((p) => p.main).join('\n\n')}
    return 0;
}
`;
}

// ── Go ─────────────────────────────────────────────────────────────────────────────────────────────────────────

export function goDocument(rng) {
  const noun = rng.pick(NOUNS);
  const T = pascal(noun);
  const rows = rng.sample(FIRST_NAMES, rng.int(3, 6)).map((n) => [n, rng.int(1, 500)]);
  const total = rows.reduce((s, r) => s + r[1], 0);
  const limit = rng.int(50, 300);
  return `// Package ${noun}s summarises ${noun} records.
package ${noun}s

import (
\t"errors"
\t"fmt"
\t"sort"
)

// ${T} is one ${noun} with an owner and a size.
type ${T} struct {
\tOwner string
\tSize  int
}

// ErrEmpty is returned when there is nothing to summarise.
var ErrEmpty = errors.New("${noun}s: no records")

// Total adds up the sizes.
func Total(items []${T}) int {
\tsum := 0
\tfor _, it := range items {
\t\tsum += it.Size
\t}
\treturn sum
}

// Largest returns the ${noun} with the greatest size.
func Largest(items []${T}) (${T}, error) {
\tif len(items) == 0 {
\t\treturn ${T}{}, ErrEmpty
\t}
\tbest := items[0]
\tfor _, it := range items[1:] {
\t\tif it.Size > best.Size {
\t\t\tbest = it
\t\t}
\t}
\treturn best, nil
}

// Above returns the owners whose ${noun} is larger than limit, sorted by name.
func Above(items []${T}, limit int) []string {
\tvar owners []string
\tfor _, it := range items {
\t\tif it.Size > limit {
\t\t\towners = append(owners, it.Owner)
\t\t}
\t}
\tsort.Strings(owners)
\treturn owners
}

func Example() {
\titems := []${T}{
${rows.map(([n, s]) => `\t\t{Owner: "${n}", Size: ${s}},`).join('\n')}
\t}
\tfmt.Println(Total(items))
\tfmt.Println(Above(items, ${limit}))
\t// Output:
\t// ${total}
\t// [${rows.filter((r) => r[1] > limit).map((r) => r[0]).sort().join(' ')}]
}
`;
}

// ── Rust ───────────────────────────────────────────────────────────────────────────────────────────────────────

export function rustDocument(rng) {
  const xs = intList(rng, rng.int(5, 9), -50, 100);
  const n = rng.int(20, 200);
  const ps = primesUpTo(n);
  const word = rng.pick(THINGS);
  return `//! ${rng.pick(['Number helpers', 'Exercises', 'Small utilities'])} with unit tests.

/// Returns the smallest and largest value, or \`None\` for an empty slice.
pub fn min_max(values: &[i64]) -> Option<(i64, i64)> {
    let mut iter = values.iter().copied();
    let first = iter.next()?;
    Some(iter.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
}

/// All primes up to and including \`limit\` (sieve of Eratosthenes).
pub fn primes_up_to(limit: usize) -> Vec<usize> {
    if limit < 2 {
        return Vec::new();
    }
    let mut is_prime = vec![true; limit + 1];
    is_prime[0] = false;
    is_prime[1] = false;
    let mut p = 2;
    while p * p <= limit {
        if is_prime[p] {
            let mut m = p * p;
            while m <= limit {
                is_prime[m] = false;
                m += p;
            }
        }
        p += 1;
    }
    (0..=limit).filter(|&i| is_prime[i]).collect()
}

/// Counts characters that are ASCII vowels.
pub fn vowels(word: &str) -> usize {
    word.chars().filter(|c| "aeiouAEIOU".contains(*c)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_works() {
        assert_eq!(min_max(&${listRepr(xs)}), Some((${Math.min(...xs)}, ${Math.max(...xs)})));
        assert_eq!(min_max(&[]), None);
    }

    #[test]
    fn primes() {
        let ps = primes_up_to(${n});
        assert_eq!(ps.len(), ${ps.length});
        assert_eq!(ps.last(), Some(&${ps[ps.length - 1]}));
    }

    #[test]
    fn counts_vowels() {
        assert_eq!(vowels("${word}"), ${[...word].filter((c) => 'aeiou'.includes(c)).length});
    }
}
`;
}

// ── SQL ────────────────────────────────────────────────────────────────────────────────────────────────────────

export function sqlDocument(rng) {
  const n = rng.int(6, 12);
  const rows = Array.from({ length: n }, (_, i) => ({
    id: i + 1, first: rng.pick(FIRST_NAMES), last: rng.pick(LAST_NAMES), job: rng.pick(JOBS.slice(0, 8)),
    city: rng.pick(CITIES.slice(0, 5)), salary: rng.int(28, 95) * 1000,
  }));
  const byCity = new Map();
  for (const r of rows) byCity.set(r.city, [...(byCity.get(r.city) ?? []), r.salary]);
  const summary = [...byCity.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([c, s]) => `-- ${c.padEnd(10)} ${String(s.length).padStart(2)}  ${round(s.reduce((a, b) => a + b, 0) / s.length, 2)}`);
  const raise = rng.int(2, 6);
  return `-- Staff directory: schema, sample data and a few reports.

CREATE TABLE staff (
    id         INTEGER PRIMARY KEY,
    first_name TEXT    NOT NULL,
    last_name  TEXT    NOT NULL,
    job        TEXT    NOT NULL,
    city       TEXT    NOT NULL,
    salary     INTEGER NOT NULL CHECK (salary > 0)
);

CREATE INDEX staff_city ON staff (city);

INSERT INTO staff (id, first_name, last_name, job, city, salary) VALUES
${rows.map((r) => `    (${r.id}, '${r.first}', '${r.last}', '${r.job}', '${r.city}', ${r.salary})`).join(',\n')};

-- Head count and average salary per city.
SELECT city, COUNT(*) AS people, ROUND(AVG(salary), 2) AS avg_salary
FROM staff
GROUP BY city
ORDER BY city;
-- city       people avg_salary
${summary.join('\n')}

-- The best-paid person in each job (ties: lowest id).
SELECT s.job, s.first_name, s.last_name, s.salary
FROM staff AS s
WHERE NOT EXISTS (
    SELECT 1 FROM staff AS t
    WHERE t.job = s.job AND (t.salary > s.salary OR (t.salary = s.salary AND t.id < s.id))
)
ORDER BY s.job;

-- Give everyone in ${rows[0].city} a ${raise}% raise.
UPDATE staff SET salary = salary * ${100 + raise} / 100 WHERE city = '${rows[0].city}';
`;
}

// ── Shell ──────────────────────────────────────────────────────────────────────────────────────────────────────

export function shellDocument(rng) {
  const days = rng.int(3, 30);
  const dir = rng.pick(['/var/backups/app', '$HOME/backups', '/srv/archive', './backups']);
  const src = rng.pick(['/srv/data', '$HOME/projects', '/etc/myapp', './site']);
  return `#!/usr/bin/env bash
# Back up ${src} into ${dir} as a dated tarball and delete archives older than ${days} days.
# Usage: ./backup.sh [--dry-run]
set -euo pipefail

SRC="${src}"
DEST="${dir}"
KEEP_DAYS=${days}
DRY_RUN=0

for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,3p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '%s %s\\n' "$(date +%H:%M:%S)" "$*"; }

run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    log "would run: $*"
  else
    "$@"
  fi
}

[ -d "$SRC" ] || { echo "source $SRC does not exist" >&2; exit 1; }
run mkdir -p "$DEST"

stamp=$(date +%Y-%m-%d_%H%M)
archive="$DEST/backup_$stamp.tar.gz"
log "archiving $SRC -> $archive"
run tar -czf "$archive" -C "$(dirname "$SRC")" "$(basename "$SRC")"

# Old archives: -mtime +N means strictly more than N whole days.
count=0
while IFS= read -r -d '' old; do
  run rm -f -- "$old"
  count=$((count + 1))
done < <(find "$DEST" -name 'backup_*.tar.gz' -mtime +"$KEEP_DAYS" -print0)
log "removed $count old archive(s)"
`;
}
