// Structured data as text: CSV tables, JSON records, log files, configuration files and Markdown reports.

import { CITIES, DAYS_IN_MONTH, FIRST_NAMES, JOBS, LAST_NAMES, MONTHS, PRODUCTS, clock, money, person, round,
  thousands } from './words.mjs';

function isoDate(rng, year = 2000 + rng.int(15, 24)) {
  const m = rng.int(1, 12);
  const d = rng.int(1, DAYS_IN_MONTH[m - 1]);
  return `${year}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

function csvWeather(rng) {
  const city = rng.pick(CITIES);
  const year = 2000 + rng.int(15, 24);
  const m = rng.int(1, 12);
  const days = rng.int(10, 28);
  let t = rng.int(-5, 25);
  const rows = ['date,min_c,max_c,rain_mm,wind_kmh'];
  for (let d = 1; d <= days; d++) {
    t = Math.max(-15, Math.min(35, t + rng.int(-3, 3)));
    const lo = t - rng.int(3, 9);
    rows.push(`${year}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')},${lo},${t},${rng.chance(0.6) ? 0 : round(rng.int(1, 300) / 10, 1)},${rng.int(2, 45)}`);
  }
  return `# Daily weather observations, ${city}, ${MONTHS[m - 1]} ${year}\n${rows.join('\n')}\n`;
}

function csvSales(rng) {
  const regions = ['north', 'south', 'east', 'west'];
  const rows = ['order_id,date,region,product,quantity,unit_price,total'];
  let id = rng.int(1000, 90000);
  const totals = new Map();
  for (let i = 0; i < rng.int(12, 30); i++) {
    const [p, price] = rng.pick(PRODUCTS);
    const q = rng.int(1, 12);
    const region = rng.pick(regions);
    totals.set(region, (totals.get(region) ?? 0) + q * price);
    rows.push(`${id++},${isoDate(rng, 2023)},${region},"${p}",${q},${(price / 100).toFixed(2)},${((q * price) / 100).toFixed(2)}`);
  }
  const summary = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([r, c]) => `${r}: ${money(c)}`).join(', ');
  return `${rows.join('\n')}\n\nTotals by region (highest first): ${summary}.\n`;
}

function csvPeople(rng) {
  const rows = ['id,name,job,city,started,hours_per_week'];
  for (let i = 1; i <= rng.int(10, 25); i++) {
    rows.push(`${i},${rng.pick(FIRST_NAMES)} ${rng.pick(LAST_NAMES)},${rng.pick(JOBS)},${rng.pick(CITIES)},${isoDate(rng)},${rng.pick([20, 24, 30, 32, 36, 38, 40])}`);
  }
  return rows.join('\n') + '\n';
}

function jsonRecords(rng) {
  const n = rng.int(3, 6);
  const records = Array.from({ length: n }, (_, i) => {
    const items = rng.sample(PRODUCTS, rng.int(1, 3)).map(([name, price]) => ({ name, price: price / 100, quantity: rng.int(1, 5) }));
    return {
      id: `ord_${rng.int(10000, 99999)}`,
      customer: { name: person(rng), city: rng.pick(CITIES) },
      created: `${isoDate(rng, 2024)}T${clock(rng.int(0, 1439))}:${String(rng.int(0, 59)).padStart(2, '0')}Z`,
      status: rng.pick(['pending', 'paid', 'shipped', 'delivered', 'cancelled']),
      items,
      total: Math.round(items.reduce((s, it) => s + it.price * 100 * it.quantity, 0)) / 100,
      gift: rng.chance(0.2),
      note: rng.chance(0.3) ? rng.pick(['leave at the door', 'call on arrival', 'fragile', null]) : null,
      line: i + 1,
    };
  });
  const body = { page: rng.int(1, 9), per_page: n, results: records };
  return JSON.stringify(body, null, rng.pick([2, 4])) + '\n';
}

function jsonConfig(rng) {
  const cfg = {
    name: rng.pick(['inventory-service', 'weather-station', 'photo-archive', 'tram-timetable', 'garden-sensors']),
    version: `${rng.int(0, 4)}.${rng.int(0, 20)}.${rng.int(0, 9)}`,
    server: { host: rng.pick(['0.0.0.0', '127.0.0.1', 'localhost']), port: rng.int(3000, 9000), workers: rng.int(1, 16) },
    database: { url: `postgres://app@db.internal:5432/${rng.pick(['main', 'app', 'records'])}`, pool: rng.int(2, 20), timeout_ms: rng.int(1, 30) * 1000 },
    logging: { level: rng.pick(['debug', 'info', 'warn']), format: rng.pick(['json', 'text']), rotate_mb: rng.pick([10, 50, 100]) },
    features: Object.fromEntries(rng.sample(['dark_mode', 'beta_search', 'export_csv', 'offline_cache', 'two_factor'], 3).map((f) => [f, rng.chance(0.5)])),
    retry: { attempts: rng.int(1, 6), backoff: rng.pick(['linear', 'exponential']) },
  };
  return JSON.stringify(cfg, null, 2) + '\n';
}

function yamlConfig(rng) {
  const services = rng.sample(['web', 'worker', 'db', 'cache', 'scheduler', 'proxy'], rng.int(2, 4));
  return `# Deployment settings (generated ${isoDate(rng)})
project: ${rng.pick(['atlas', 'heron', 'juniper', 'quarry', 'meadow'])}
environment: ${rng.pick(['staging', 'production', 'test'])}
services:
${services.map((s) => `  ${s}:
    image: registry.local/${s}:${rng.int(1, 9)}.${rng.int(0, 30)}
    replicas: ${rng.int(1, 6)}
    memory: ${rng.pick([128, 256, 512, 1024])}Mi
    env:
      LOG_LEVEL: ${rng.pick(['info', 'debug', 'warn'])}
      TIMEOUT_SECONDS: "${rng.int(5, 120)}"`).join('\n')}
`;
}

function iniConfig(rng) {
  return `; ${rng.pick(['Editor', 'Backup tool', 'Mail client', 'Sync daemon'])} settings
[general]
language = ${rng.pick(['en', 'pt', 'de', 'ja', 'sw'])}
autosave = ${rng.pick(['true', 'false'])}
autosave_interval = ${rng.int(1, 30)}

[paths]
data = ${rng.pick(['/var/lib/app', '~/.local/share/app', 'C:\\ProgramData\\App'])}
cache = ${rng.pick(['/tmp/app-cache', '~/.cache/app'])}

[network]
proxy = ${rng.chance(0.5) ? 'none' : `http://10.0.${rng.int(0, 9)}.${rng.int(1, 254)}:${rng.int(3000, 9000)}`}
timeout = ${rng.int(5, 60)}
retries = ${rng.int(0, 5)}
`;
}

function accessLog(rng) {
  const paths = ['/', '/index.html', '/api/items', '/api/items/42', '/login', '/static/app.js', '/static/style.css',
    '/search?q=tea', '/api/orders', '/favicon.ico', '/docs/getting-started', '/api/health'];
  const agents = ['curl/8.5.0', 'Mozilla/5.0 (X11; Linux x86_64)', 'Mozilla/5.0 (Macintosh)', 'python-requests/2.31', 'monitor/1.0'];
  let t = rng.int(0, 1200) * 60;
  const day = rng.int(1, 28), mon = rng.pick(['Jan', 'Mar', 'May', 'Jul', 'Sep', 'Nov']);
  const lines = [];
  for (let i = 0; i < rng.int(15, 35); i++) {
    t += rng.int(0, 40);
    const status = rng.pick([200, 200, 200, 200, 304, 404, 500, 201, 302]);
    const method = rng.chance(0.8) ? 'GET' : rng.pick(['POST', 'PUT', 'DELETE']);
    const hh = String(Math.floor(t / 3600) % 24).padStart(2, '0'), mm = String(Math.floor(t / 60) % 60).padStart(2, '0'), ss = String(t % 60).padStart(2, '0');
    lines.push(`192.168.${rng.int(0, 3)}.${rng.int(2, 254)} - - [${String(day).padStart(2, '0')}/${mon}/2024:${hh}:${mm}:${ss} +0000] "${method} ${rng.pick(paths)} HTTP/1.1" ${status} ${status === 304 ? 0 : rng.int(120, 48000)} "-" "${rng.pick(agents)}"`);
  }
  return lines.join('\n') + '\n';
}

function appLog(rng) {
  const svc = rng.pick(['scheduler', 'importer', 'mailer', 'billing', 'resizer']);
  let ms = rng.int(0, 80_000_000);
  const day = rng.int(1, 27);
  const lines = [];
  const jobs = rng.int(3, 8);
  for (let j = 0; j < jobs; j++) {
    const id = rng.int(1000, 9999);
    const stamp = () => {
      ms += rng.int(5, 4000);
      const s = Math.floor(ms / 1000);
      return `2024-06-${String(day + Math.floor(s / 86400)).padStart(2, '0')}T${clock(Math.floor(s / 60) % 1440)}:${String(s % 60).padStart(2, '0')}.${String(ms % 1000).padStart(3, '0')}Z`;
    };
    lines.push(`${stamp()} INFO  ${svc} job=${id} started input=${rng.pick(['batch', 'upload', 'queue'])}/${rng.int(1, 500)}`);
    const n = rng.int(10, 5000);
    if (rng.chance(0.25)) lines.push(`${stamp()} WARN  ${svc} job=${id} slow step=${rng.pick(['fetch', 'parse', 'write'])} took_ms=${rng.int(1500, 9000)}`);
    if (rng.chance(0.15)) {
      lines.push(`${stamp()} ERROR ${svc} job=${id} failed error="${rng.pick(['connection reset by peer', 'timeout after 30s', 'disk quota exceeded', 'invalid record at line 17'])}" attempt=${rng.int(1, 3)}`);
    } else {
      lines.push(`${stamp()} INFO  ${svc} job=${id} finished records=${n} duration_ms=${rng.int(20, 20000)}`);
    }
  }
  return lines.join('\n') + '\n';
}

function markdownReport(rng) {
  const teams = rng.sample(['Platform', 'Mobile', 'Data', 'Support', 'Design', 'Research', 'Billing'], rng.int(3, 6));
  const rows = teams.map((t) => {
    const opened = rng.int(5, 60), closed = rng.int(3, 60);
    return [t, opened, closed, rng.int(1, 14)];
  });
  const best = rows.reduce((a, b) => (b[2] - b[1] > a[2] - a[1] ? b : a));
  const totalClosed = rows.reduce((s, r) => s + r[2], 0);
  const q = rng.int(1, 4);
  return `## Issue tracker summary, Q${q}

| Team | Opened | Closed | Median days to close |
|------|-------:|-------:|---------------------:|
${rows.map(([t, o, c, d]) => `| ${t} | ${o} | ${c} | ${d} |`).join('\n')}

${thousands(totalClosed)} issues were closed this quarter. ${best[0]} reduced its backlog the most (${best[2] - best[1] >= 0 ? `${best[2] - best[1]} more closed than opened` : `though it still opened ${best[1] - best[2]} more than it closed`}).
${rows.filter((r) => r[1] > r[2]).length} of ${rows.length} teams opened more issues than they closed.
`;
}

const GENERATORS = [csvWeather, csvSales, csvPeople, jsonRecords, jsonConfig, yamlConfig, iniConfig, accessLog, appLog, markdownReport];

export function dataDocument(rng) {
  return rng.pick(GENERATORS)(rng);
}
