// First contentful paint of viewer pages, in Debian's Chromium (headless),
// each page loaded `runs` times after one warm-up load.
//   node bench/viewer/paint.mjs BASE_URL KEY [runs]
import { chromium } from '../../viewer-tests/node_modules/playwright-core/index.mjs';

const [base, key, runsArg] = process.argv.slice(2);
const runs = Number(runsArg || 10);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
const page = await (await browser.newContext()).newPage();
await page.goto(base + '/ui/login');
await page.fill('#key', key);
await page.click('button[type=submit]');
await page.waitForURL(/\/ui\/events$/);
const first = await page.locator('table.events tbody tr td a').first().getAttribute('href');
const pages = [
  ['events, newest 50', '/ui/events'],
  ['events, next page', null],
  ['events, actor filter', '/ui/events?actor=42'],
  ['events, text search', '/ui/events?q=alice'],
  ['event detail with proof', first],
  ['activity (30 days)', '/ui/activity'],
];
const next = await page.locator('a[rel=next]').getAttribute('href');
pages[1][1] = next;
const quantile = (xs, q) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
for (const [label, path] of pages) {
  const times = [];
  for (let i = 0; i <= runs; i++) {
    await page.goto(base + path, { waitUntil: 'load' });
    const t = await page.evaluate(() => new Promise((resolve) => {
      const nav = performance.getEntriesByType('navigation')[0];
      const done = (paint) => resolve({ paint, response: nav.responseEnd, dcl: nav.domContentLoadedEventEnd });
      new PerformanceObserver((list) => {
        const fcp = list.getEntries().find((e) => e.name === 'first-contentful-paint');
        if (fcp) done(fcp.startTime);
      }).observe({ type: 'paint', buffered: true });
      setTimeout(() => done(NaN), 3000);
    }));
    if (i > 0) times.push(t);
  }
  const q = (key, p) => quantile(times.map((t) => t[key]), p).toFixed(0);
  console.log(`${label}: first contentful paint p50 ${q('paint', 0.5)} ms, p90 ${q('paint', 0.9)} ms; HTML received p50 ${q('response', 0.5)} ms; DOMContentLoaded p50 ${q('dcl', 0.5)} ms (${runs} loads)`);
}
await browser.close();
