// The web viewer in a real browser: Debian's Chromium (headless) driven by
// playwright-core, against a real `trailmark serve` with the embedded store
// and seeded data. Screenshots of every page go to target/viewer-artifacts.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = process.env.TRAILMARK_BIN || join(root, 'target', 'debug', 'trailmark');
const artifacts = join(root, 'target', 'viewer-artifacts');
mkdirSync(artifacts, { recursive: true });

let server, dataDir, base, admin, browser;

const freePort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

async function until(what, check, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function api(method, path, body, key = admin) {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const day = (back) => new Date(Date.now() - back * 86400000);
const iso = (d) => d.toISOString();
const ymd = (d) => d.toISOString().slice(0, 10);

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tm-viewer-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], { stdio: 'ignore' });
  await until('the server', async () => (await fetch(base + '/healthz')).ok);
  admin = readFileSync(join(dataDir, 'bootstrap-admin.key'), 'utf8').trim();
  await api('POST', '/v1/events', [
    { tenant: 'acme', occurred_at: iso(day(3)), actor: { id: 'alice', type: 'user' }, action: 'create',
      resource: { type: 'Invoice', id: '61' }, changes: { total: { old: null, new: '19.99' }, status: { old: null, new: 'draft' } } },
    { tenant: 'acme', occurred_at: iso(day(1)), actor: { id: 'alice', type: 'user' }, action: 'update',
      resource: { type: 'Invoice', id: '61' }, context: { ip: '203.0.113.7', user_agent: 'Mozilla/5.0' },
      changes: { total: { old: '19.99', new: '24.99' },
                 note: { old: 'Payment due within thirty days of the invoice date', new: 'Payment due within fourteen days of the invoice date' } } },
    { tenant: 'acme', occurred_at: iso(day(1)), actor: { id: 'bob', type: 'user' }, action: 'delete',
      resource: { type: 'Customer', id: '7' }, changes: { name: { old: 'Initech', new: null } } },
    { tenant: 'acme', occurred_at: iso(day(0)), actor: { id: 'mallory', type: 'user' }, action: 'login',
      outcome: 'failure', context: { ip: '198.51.100.9' } },
    { tenant: 'globex', occurred_at: iso(day(2)), actor: { id: 'gina', type: 'user' }, action: 'export',
      resource: { type: 'Report', id: 'q3' } },
  ]);
  await until('checkpoints', async () => {
    const t = await api('GET', '/v1/tenants');
    const acme = await fetch(base + '/v1/checkpoint?tenant=acme', { headers: { authorization: `Bearer ${admin}` } });
    return t.tenants.length >= 2 && acme.ok && (await acme.text()).split('\n')[1] === '4';
  });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function signIn(page, key) {
  await page.goto(base + '/ui/events');
  assert.match(page.url(), /\/ui\/login$/, 'no session: sent to sign in');
  await page.fill('#key', key);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/ui\/events$/);
}

test('an admin finds, inspects, follows history, charts and verifies, then tampering is named', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, admin);
  await page.screenshot({ path: join(artifacts, 'events.png'), fullPage: true });

  // Filter by actor and date: only alice's update from yesterday.
  await page.fill('input[name=actor]', 'alice');
  await page.fill('input[name=since]', ymd(day(2)));
  await page.fill('input[name=until]', ymd(day(0)));
  await page.click('form.filters button[type=submit]');
  await page.waitForURL(/actor=alice/);
  assert.match(page.url(), /since=/, 'the URL holds the filters');
  const rows = page.locator('table.events tbody tr');
  assert.equal(await rows.count(), 1);
  assert.equal(await rows.locator('.action').textContent(), 'update');
  assert.equal(await rows.locator('.action.update').count(), 1, 'updates are coloured as updates');
  await page.screenshot({ path: join(artifacts, 'events-filtered.png'), fullPage: true });

  // The update: old and new side by side, long text diffed inline, proof verified.
  await rows.locator('td a').first().click();
  await page.waitForURL(/\/ui\/events\/[0-9a-f-]+\?tenant=acme$/); // links name the tenant
  const total = page.locator('table.diff tr', { hasText: 'total' });
  assert.equal((await total.locator('td.old').textContent()).trim(), '19.99');
  assert.equal((await total.locator('td.new').textContent()).trim(), '24.99');
  const note = page.locator('table.diff tr', { hasText: 'note' });
  assert.equal((await note.locator('del').textContent()).trim(), 'thirty');
  assert.equal((await note.locator('ins').textContent()).trim(), 'fourteen');
  assert.equal(await page.locator('.proof').getAttribute('data-verified'), 'true');
  assert.match(await page.locator('dl').nth(1).textContent(), /203\.0\.113\.7/);
  await page.screenshot({ path: join(artifacts, 'event.png'), fullPage: true });

  // Its record's history, oldest first, with the state after each step.
  await page.click('text=History of this record');
  await page.waitForURL(/\/ui\/history\/Invoice\/61\?tenant=acme$/); // a record is one tenant's
  const steps = page.locator('ol.history > li');
  assert.equal(await steps.count(), 2);
  assert.match(await steps.nth(0).textContent(), /create/);
  assert.match(await steps.nth(1).locator('dl').textContent(), /total24\.99/);
  assert.match(await steps.nth(1).locator('dl').textContent(), /statusdraft/, 'state carries earlier fields');
  await page.screenshot({ path: join(artifacts, 'history.png'), fullPage: true });

  // Activity: the charts render as SVG.
  await page.click('nav >> text=Activity');
  await page.waitForURL(/\/ui\/activity$/);
  for (const id of ['per-day', 'failures', 'actors', 'resources']) {
    assert.equal(await page.locator(`#chart-${id} svg`).count(), 1, `chart ${id}`);
  }
  assert.match(await page.locator('#chart-actors svg').innerHTML(), /alice/);
  await page.screenshot({ path: join(artifacts, 'activity.png'), fullPage: true });



  // Integrity: a verification run passes…
  await page.click('nav >> text=Integrity');
  await page.waitForURL(/\/ui\/integrity$/);
  await page.click('#verify');
  await page.waitForSelector('#verify-result.ok', { timeout: 15000 });
  assert.match(await page.locator('#verify-result').textContent(), /^Verified:/);
  await page.screenshot({ path: join(artifacts, 'integrity.png'), fullPage: true });

  // …and after an edit to the database behind the server's back, fails
  // naming the entry.
  execFileSync('python3', ['-c', `
import sqlite3
c = sqlite3.connect(${JSON.stringify(join(dataDir, 'trailmark.db'))}, timeout=10)
c.execute("UPDATE entries SET envelope = CAST(replace(CAST(envelope AS TEXT), 'bob', 'eve') AS BLOB) WHERE tenant = 'acme' AND seq = 2")
c.commit()
`]);
  await page.click('#verify');
  await page.waitForSelector('#verify-result.failed', { timeout: 15000 });
  assert.match(await page.locator('#verify-result').textContent(), /FAILED: acme: seq 2:/);
  await page.screenshot({ path: join(artifacts, 'integrity-tampered.png'), fullPage: true });

  // Sign out: every page is refused again.
  await page.click('nav button:has-text("Sign out")');
  await page.waitForURL(/\/ui\/login$/);
  for (const path of ['/ui/events', '/ui/activity', '/ui/integrity', '/ui/history/Invoice/61']) {
    await page.goto(base + path);
    assert.match(page.url(), /\/ui\/login$/, `${path} after sign-out`);
  }
  await context.close();
});

test('the activity charts say what /v1/stats says', async () => {
  // A key bound to acme: the page and the API count the same events (its
  // own reads go to _system, which it does not see).
  const { key: reader } = await api('POST', '/v1/keys', { name: 'charts', scopes: 'read', tenant: 'acme' });
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, reader);
  await page.goto(base + '/ui/activity');
  // The charts say what /v1/stats says (same 30 days, same tenant): each
  // top actor and resource type once, in order, labelled with its own name
  // and count, its bar as long as its share; each day's column sums to that
  // day's events; failures, and only failures, in the failure colour.
  const stats = await api('GET', '/v1/stats?days=30', undefined, reader);
  const readBars = (id) => page.locator(`#chart-${id} g.bar`).evaluateAll((gs) => gs.map((g) => ({
    label: g.dataset.label, count: Number(g.dataset.count),
    shown: g.querySelector('text').textContent, counted: g.querySelectorAll('text')[1].textContent,
    width: Number(g.querySelector('rect').getAttribute('width')),
  })));
  for (const [id, list, key] of [['actors', stats.by_actor, 'actor'], ['resources', stats.by_resource_type, 'resource_type']]) {
    const bars = await readBars(id);
    assert.deepEqual(bars.map((b) => [b.label, b.count]), list.slice(0, 10).map((x) => [x[key], x.count]), `chart ${id}`);
    assert.deepEqual(bars.map((b) => b.shown), bars.map((b) => b.label), `${id}: each bar labelled with its own name`);
    assert.deepEqual(bars.map((b) => Number(b.counted)), bars.map((b) => b.count));
    const widest = Math.max(...bars.map((b) => b.width));
    const most = Math.max(...bars.map((b) => b.count));
    for (const b of bars) assert.ok(Math.abs(b.width / widest - b.count / most) < 0.01, `${id}: ${b.label}'s bar is its share`);
  }
  const segments = (id) => page.locator(`#chart-${id} rect.seg`).evaluateAll((rs) => rs.map((r) => ({
    day: r.dataset.day, series: r.dataset.series, count: Number(r.dataset.count), fill: r.getAttribute('fill'),
  })));
  const perDay = {};
  for (const s of await segments('per-day')) {
    perDay[s.day] = (perDay[s.day] || 0) + s.count;
    assert.notEqual(s.fill, '#c62828', 'only failures are drawn in the failure colour');
  }
  assert.deepEqual(perDay, Object.fromEntries(stats.per_day.map((d) => [d.day, d.count])));
  const failures = await segments('failures');
  assert.ok(failures.length > 0 && failures.every((s) => s.fill === '#c62828' && s.series === 'failure'));
  assert.equal(failures.reduce((n, s) => n + s.count, 0), stats.by_outcome.find((o) => o.outcome === 'failure').count);
  const chartWidth = await page.locator('#chart-per-day svg').evaluate((svg) => svg.getBoundingClientRect().width);
  const mainWidth = await page.locator('main').evaluate((m) => m.getBoundingClientRect().width);
  assert.ok(chartWidth > 0.9 * mainWidth, `charts use the page's width (${chartWidth} of ${mainWidth})`);
  await context.close();
});

test('without a key no page shows trail data; a tenant-bound key sees only its tenant', async () => {
  for (const path of ['/ui/events', '/ui/activity', '/ui/integrity', '/ui/history/Invoice/61', '/ui/export?format=csv']) {
    const r = await fetch(base + path, { redirect: 'manual' });
    assert.equal(r.status, 303, path);
    assert.equal(r.headers.get('location'), '/ui/login');
  }
  const bad = await fetch(base + '/ui/login', { method: 'POST', headers: { Origin: base }, body: new URLSearchParams({ key: 'tmk_nope' }) });
  assert.equal(bad.status, 401);

  const { key } = await api('POST', '/v1/keys', { name: 'globex reader', scopes: 'read', tenant: 'globex' });
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  await signIn(page, key);
  const text = await page.locator('main').textContent();
  assert.match(text, /gina/);
  assert.doesNotMatch(text, /alice|bob|mallory|acme/);
  await page.screenshot({ path: join(artifacts, 'events-phone-globex.png'), fullPage: true });
  await page.goto(base + '/ui/history/Invoice/61');
  assert.match(await page.locator('main').textContent(), /No events for this record/);
  // A link to another tenant's record is refused, not shown as this tenant's.
  const elsewhere = await page.goto(base + '/ui/history/Invoice/61?tenant=acme');
  assert.equal(elsewhere.status(), 403);
  await page.goto(base + '/ui/activity');
  assert.doesNotMatch(await page.locator('main').innerHTML(), /alice|mallory/);
  const csv = await page.evaluate(async () => (await fetch('/ui/export?format=csv')).text());
  assert.match(csv, /gina/);
  assert.doesNotMatch(csv, /alice|acme/);
  await page.goto(base + '/ui/integrity');
  assert.doesNotMatch(await page.locator('main').textContent(), /acme/);
  await context.close();
});

test('an admin key switches tenant and sees only that tenant', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, admin);
  // The switch posts the form and reloads the page: wait for the reload.
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/ui/events') && r.request().method() === 'GET'),
    page.selectOption('nav select[name=tenant]', 'globex'),
  ]);
  await page.waitForFunction(() => !document.querySelector('table.events')?.textContent.includes('alice'));
  const text = await page.locator('main table.events').textContent();
  assert.match(text, /gina/);
  assert.doesNotMatch(text, /alice|bob/);
  // A link naming another tenant's record is followed to it: the switch
  // chooses what lists show (it showed globex's Invoice 61: none).
  await page.goto(base + '/ui/history/Invoice/61?tenant=acme');
  assert.ok(await page.locator('ol.history > li').count() > 0, "acme's Invoice 61");
  await page.goto(base + '/ui/events');
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/ui/events') && r.request().method() === 'GET'),
    page.selectOption('nav select[name=tenant]', ''),
  ]);
  await page.waitForFunction(() => document.querySelector('table.events')?.textContent.includes('alice'));
  assert.match(await page.locator('main table.events').textContent(), /alice/);
  // The keyboard reaches the filters and the table's links.
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement?.tagName);
  assert.ok(['A', 'SELECT', 'BUTTON', 'INPUT'].includes(focused), focused);
  await context.close();
});

test('page views are recorded in _system', async () => {
  const events = await api('GET', '/v1/events?tenant=_system&limit=200');
  const routes = events.events.map((e) => e.metadata?.route ?? e.resource?.id).filter(Boolean);
  for (const route of ['/v1/events', '/v1/events/{id}', '/v1/resources/{type}/{id}/history', '/ui/activity', '/ui/integrity']) {
    assert.ok(routes.includes(route), `${route} recorded: ${JSON.stringify(routes)}`);
  }
});

test('the Retention page lists policies and holds and previews a cleanup; an erased event says why', async () => {
  await api('PUT', '/v1/retention', { tenant: 'globex', resource_type: 'Report', max_age_days: 30 });
  const hold = await api('POST', '/v1/holds', { tenant: 'globex', actor: 'hank', reason: 'case 2026-117' });
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, admin);
  await page.click('nav >> text=Retention');
  await page.waitForURL(/\/ui\/retention$/);
  assert.match(await page.locator('table.policies').textContent(), /globex\s*resource_type=Report\s*30/);
  assert.match(await page.locator('table.holds').textContent(), new RegExp(`${hold.id}.*globex.*actor=hank.*case 2026-117`));
  await page.click('button:has-text("Preview (dry run)")');
  await page.waitForURL(/\/ui\/retention\/preview$/);
  // Everything was received today: a 30-day policy expires nothing yet.
  assert.equal(await page.locator('.preview .removal-total').getAttribute('data-entries'), '0');
  await page.screenshot({ path: join(artifacts, 'retention.png'), fullPage: true });

  // Erase gina: her event stays, and says it was erased and why.
  const erased = await api('POST', '/v1/erasures', { tenant: 'globex', actor: 'gina', reason: 'GDPR request 9' });
  assert.equal(erased.entries, 1);
  const [event] = (await api('GET', '/v1/events?tenant=globex&actor=gina')).events;
  await page.goto(`${base}/ui/events/${event.id}?tenant=globex`);
  const notice = page.locator('p.removed');
  assert.equal(await notice.getAttribute('data-state'), 'erased');
  assert.match(await notice.textContent(), /Payload erased: GDPR request 9 \(recorded in _system seq \d+\)/);
  assert.equal(await page.locator('.proof').getAttribute('data-verified'), 'true', 'its proof still verifies');
  await page.click('text=History of this record');
  await page.waitForURL(/\/ui\/history\/Report\/q3\?tenant=globex$/);
  assert.match(await page.locator('ol.history > li').first().textContent(), /Payload erased: GDPR request 9/);
  assert.equal(await page.locator('ol.history > li .incomplete').count(), 1);
  await page.screenshot({ path: join(artifacts, 'history-erased.png'), fullPage: true });

  // A read-only key sees no Retention link and is refused the page.
  const reader = (await api('POST', '/v1/keys', { scopes: 'read', name: 'viewer reader' })).key;
  const other = await browser.newContext();
  const readerPage = await other.newPage();
  await signIn(readerPage, reader);
  assert.equal(await readerPage.locator('nav >> text=Retention').count(), 0);
  const refused = await readerPage.goto(base + '/ui/retention');
  assert.equal(refused.status(), 403);
  await other.close();
  await context.close();
});

test('the Alerts page lists an alert, opens its events, and acknowledging it is recorded in _system', async () => {
  // Ten failed logins of one username: the default rule (10 within 60 s).
  const login = { tenant: 'initech', actor: { id: 'anonymous', type: 'user', name: 'peter' },
    action: 'auth.login', outcome: 'failure', context: { ip: '192.0.2.10' } };
  await api('POST', '/v1/events', Array.from({ length: 10 }, () => login));
  const alert = await until('the alert', async () => (await api('GET', '/v1/alerts?tenant=initech')).alerts[0]);

  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, admin);
  await page.click('nav a[href="/ui/alerts"]');
  await page.waitForURL(/\/ui\/alerts$/);
  const row = page.locator(`tr[data-alert="${alert.id}"]`);
  assert.equal(await row.locator('td.status').textContent(), 'open');
  assert.match(await row.textContent(), /10 failed logins in tenant initech/);
  await page.screenshot({ path: join(artifacts, 'alerts.png'), fullPage: true });

  // The alert opens onto its events; each opens the event itself.
  await row.locator('a').first().click();
  await page.waitForURL(new RegExp(`/ui/alerts/${alert.id}$`));
  const events = page.locator('ul.alert-events a');
  assert.equal(await events.count(), 10);
  await events.first().click();
  await page.waitForURL(/\/ui\/events\/[0-9a-f-]+\?tenant=initech$/);
  assert.equal(await page.locator('h1 .action').textContent(), 'auth.login');
  await page.goBack();
  await page.waitForURL(new RegExp(`/ui/alerts/${alert.id}$`));

  // Acknowledged from the page: the alert says so, and _system records it.
  await page.fill('form.ack input[name=note]', 'phishing drill');
  await page.click('form.ack button[value=false]');
  await page.waitForURL(new RegExp(`/ui/alerts/${alert.id}$`));
  assert.equal(await page.locator('dd.status').textContent(), 'acknowledged');
  await page.screenshot({ path: join(artifacts, 'alert.png'), fullPage: true });
  const recorded = await api('GET', '/v1/events?tenant=_system&action=trailmark.alert.acknowledged');
  assert.equal(recorded.events[0].resource.id, alert.id);
  assert.equal(recorded.events[0].metadata.note, 'phishing drill');
  assert.equal(recorded.events[0].actor.type, 'service', 'recorded as the signed-in key');

  // A key bound to another tenant sees no alert there.
  const acme = await api('POST', '/v1/keys', { name: 'acme reader', scopes: 'read', tenant: 'acme' });
  const other = await browser.newContext();
  const theirs = await other.newPage();
  await signIn(theirs, acme.key);
  await theirs.goto(base + '/ui/alerts');
  assert.equal(await theirs.locator(`tr[data-alert="${alert.id}"]`).count(), 0);
  await context.close();
  await other.close();
});

test("a record's history shows what was done to its whole table", async () => {
  // A tenant of its own: the tests above count acme's and globex's events.
  await api('POST', '/v1/events', [
    { tenant: 'hooli', actor: { id: 'alice', type: 'user' }, action: 'create',
      resource: { type: 'Customer', id: '9' }, changes: { name: { old: null, new: 'Hooli' } } },
    { tenant: 'hooli', actor: { id: 'postgres', type: 'unknown' }, action: 'truncate',
      resource: { type: 'Customer' } },
  ]);
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, admin);
  await page.goto(base + '/ui/history/Customer/9');
  const steps = page.locator('ol.history > li');
  assert.equal(await steps.count(), 2);
  assert.match(await steps.nth(1).locator('.action').textContent(), /truncate/);
  assert.match(await steps.nth(1).locator('p.whole').textContent(), /Every Customer at once/);
  assert.equal(await steps.nth(1).locator('p.none').textContent(), 'deleted');
  await page.screenshot({ path: join(artifacts, 'history-truncated.png'), fullPage: true });
  await context.close();
});

test('text that looks like markup is shown as text on every page, never run or parsed', async () => {
  // Every field an event, a hold, a policy and an erasure take as free text
  // carries markup that would mark the page (data-pwn) or run (window.pwned)
  // if it were written into the HTML unescaped, quoted for an attribute too.
  const evil = '"><img src=x data-pwn=1 onerror="window.pwned=1"><b data-pwn=1>\'';
  const [made] = (await api('POST', '/v1/events', [
    { tenant: 'evil', actor: { id: `a${evil}`, type: 'user', name: `n${evil}` }, action: 'update',
      resource: { type: `T${evil}`, id: `i${evil}`, name: `rn${evil}` }, reason: `r${evil}`,
      changes: { [`k${evil}`]: { old: `o${evil}`, new: `n${evil}` }, long: { old: `one two ${evil} three`, new: `one four ${evil} three` } },
      context: { ip: '203.0.113.9', user_agent: `ua${evil}`, request_id: `q${evil}`, session_id: `s${evil}` },
      metadata: { [`m${evil}`]: `v${evil}` } },
    { tenant: 'evil', actor: { id: 'b', type: 'user' }, action: 'delete', resource: { type: `T${evil}`, id: 'gone' } },
  ])).entries;
  await api('POST', '/v1/holds', { tenant: 'evil', actor: `a${evil}`, reason: `h${evil}` });
  await api('PUT', '/v1/retention', { tenant: 'evil', resource_type: `T${evil}`, max_age_days: 30 });
  const erased = await api('POST', '/v1/erasures', { tenant: 'evil', resource: `T${evil}:gone`, reason: `e${evil}` });
  assert.equal(erased.entries, 1);
  const [gone] = (await api('GET', '/v1/events?tenant=evil&resource_id=gone')).events;
  // Ten failed logins of one username (the default rule), acknowledged with a note.
  const login = { tenant: 'evil', actor: { id: 'anonymous', type: 'user', name: `p${evil}` },
    action: 'auth.login', outcome: 'failure', context: { ip: '192.0.2.66' } };
  await api('POST', '/v1/events', Array.from({ length: 10 }, () => login));
  const alert = await until('the alert', async () => (await api('GET', '/v1/alerts?tenant=evil')).alerts[0]);
  await api('POST', `/v1/alerts/${alert.id}/ack`, { note: `ack${evil}` });

  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, admin);
  const type = encodeURIComponent(`T${evil}`);
  const pages = [
    `/ui/events?actor=${encodeURIComponent(`a${evil}`)}&q=${encodeURIComponent(evil)}`,
    `/ui/events?resource_type=${type}`,
    `/ui/events/${made.id}?tenant=evil`,
    `/ui/events/${gone.id}?tenant=evil`,
    `/ui/history/${type}/${encodeURIComponent(`i${evil}`)}?tenant=evil`,
    `/ui/history/${type}/gone?tenant=evil`,
    '/ui/activity',
    '/ui/retention',
    `/ui/alerts/${alert.id}`,
  ];
  for (const path of pages) {
    const answer = await page.goto(base + path);
    assert.equal(answer.status(), 200, path);
    assert.equal(await page.evaluate(() => document.querySelectorAll('[data-pwn]').length), 0, `markup parsed on ${path}`);
    assert.equal(await page.evaluate(() => window.pwned), undefined, `script ran on ${path}`);
    assert.match(await page.locator('main').textContent(), /<img src=x data-pwn=1/, `shown as text on ${path}`);
  }
  // The alerts list names no free text of the events; nothing parsed there either.
  await page.goto(base + '/ui/alerts');
  assert.equal(await page.locator(`tr[data-alert="${alert.id}"]`).count(), 1);
  assert.equal(await page.evaluate(() => document.querySelectorAll('[data-pwn]').length + (window.pwned ?? 0)), 0);
  // The filters' inputs hold what was asked, as typed.
  await page.goto(base + pages[0]);
  assert.equal(await page.locator('input[name=actor]').inputValue(), `a${evil}`);
  await page.screenshot({ path: join(artifacts, 'markup-as-text.png'), fullPage: true });
  await context.close();
});
