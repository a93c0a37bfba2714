// Drives Debian's headless chromium (playwright-core) against a real node
// that crates/console/tests/browser.rs started. Steps that need the node
// itself (a restart, a corrupted journal) are asked of the Rust side over
// stdio: this script prints `ASK <what>` and waits for a line back.
//
// Usage: node run.mjs <base url> <admin token> <probes.json> <screenshot dir>
// Any page error, console error (a CSP violation is one), failed request or
// unexpected non-2xx answer fails the run. Prints "N passed, M failed".

import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { launch, until as untilFor } from './harness.mjs';

const [base, token, probesPath, shots] = process.argv.slice(2);
const probes = JSON.parse(readFileSync(probesPath, 'utf8'));
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
let passed = 0;
let failed = 0;
const problems = [];

function check(name, ok, detail = '') {
  if (ok) { passed += 1; console.log(`ok ${name}`); } else { failed += 1; console.log(`FAIL ${name} ${detail}`); }
}

async function ask(what) {
  console.log(`ASK ${what}`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== 'DONE') throw new Error(`the test did not do ${what}: ${value}`);
}

// What may go wrong on purpose, set per step.
const allowed = { statuses: new Set(), offline: false };

function watch(page, name) {
  page.on('pageerror', (error) => problems.push(`${name}: page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    if (allowed.offline && /Failed to load resource|ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|network/i.test(text)) return;
    if (/Failed to load resource: the server responded with a status of (\d+)/.test(text)) {
      const status = Number(text.match(/status of (\d+)/)[1]);
      if (allowed.statuses.has(status)) return;
    }
    problems.push(`${name}: console error: ${text}`);
  });
  page.on('requestfailed', (request) => {
    if (allowed.offline) return;
    problems.push(`${name}: request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    const status = response.status();
    if (status < 400 || allowed.statuses.has(status)) return;
    problems.push(`${name}: ${status} from ${response.request().method()} ${response.url()}`);
  });
}

async function textOf(page, selector) {
  return (await page.locator(selector).first().textContent()) ?? '';
}

/** The harness's `until`, with this run's 15 s default. */
function until(what, predicate, timeoutMs = 15000) {
  return untilFor(what, predicate, timeoutMs);
}

async function post(probe) {
  const response = await fetch(`${base}/v1/worlds/${probes.world}/inputs`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: probe,
  });
  return { status: response.status, body: await response.json() };
}

async function action(page, label) {
  const before = await textOf(page, '#result');
  await page.getByRole('button', { name: label, exact: true }).click();
  return until(`the result of ${label}`, async () => {
    const text = await textOf(page, '#result');
    return text !== before && !text.endsWith('running…') ? text : null;
  }, 30000);
}

async function players(page) {
  return page.$$eval('#scores tr', (rows) => rows.map((row) => [...row.cells].map((cell) => cell.textContent)));
}

async function consoleSteps(page) {
  await page.goto(`${base}/`);
  await until('the world id', async () => (await textOf(page, '#world')) === probes.world);
  const first = Number(await until('a head tick', async () => Number(await textOf(page, '#head')) || null));
  const later = Number(await until('the head to advance', async () => {
    const head = Number(await textOf(page, '#head'));
    return head > first ? head : null;
  }));
  check('console: the head tick advances', later > first, `${first} → ${later}`);
  await until('recent ticks', async () => (await page.locator('#ticks tr').count()) >= 3);
  check('console: recent ticks are listed', true);
  check('console: the four roots are shown', /^[0-9a-f]{64}$/.test(await textOf(page, '#continuity_root')));

  // One task of the page: the rows are redrawn twice a second.
  await page.$eval('#ticks tr', (row) => row.click());
  const receipts = await until('receipts', async () => {
    const text = await textOf(page, '#receipts');
    return /receipts?/.test(text) && /events/.test(text) ? text : null;
  });
  check('console: a clicked tick shows its receipts', /Tick \d+: \d+ receipts?/.test(receipts), receipts.slice(0, 80));

  // A wrong token: the page says so and forgets it.
  allowed.statuses.add(401);
  await page.fill('#token', 'not-the-token');
  await page.click('#token-set');
  const refused = await action(page, 'Checkpoint');
  check('console: a wrong token is refused and forgotten', /refused the token/.test(refused) && await page.locator('[data-action="checkpoint"]').isDisabled(), refused);
  allowed.statuses.delete(401);

  await page.fill('#token', token);
  await page.click('#token-set');
  const open = await post(probes.open);
  check('admission: a 202 while open', open.status === 202, JSON.stringify(open));
  const closed = await action(page, 'Close admission');
  check('console: close admission', /"admission": "closed"/.test(closed), closed);
  await until('the status to say closed', async () => (await textOf(page, '#admission')) === 'closed');
  const refusedInput = await post(probes.closed);
  check('admission: 503 admission_closed once closed', refusedInput.status === 503 && refusedInput.body.error.code === 'admission_closed', JSON.stringify(refusedInput));
  await until('readiness to name the closed admission', async () => /admission is closed/.test(await textOf(page, '#ready')));
  const reopened = await action(page, 'Open admission');
  check('console: open admission', /"admission": "open"/.test(reopened), reopened);
  await until('the status to say open', async () => (await textOf(page, '#admission')) === 'open');

  const checkpoint = await action(page, 'Checkpoint');
  check('console: checkpoint shows its result', /"tick": \d+/.test(checkpoint) && /"bytes"/.test(checkpoint), checkpoint);
  const backup = await action(page, 'Hot backup');
  check('console: hot backup shows its result', /"manifest_blake3"/.test(backup), backup);
  check('console: last backup is shown', /^tick \d+ at /.test(await textOf(page, '#backup')));
  const audit = await action(page, 'Audit');
  check('console: audit matches', /"result": "matched"/.test(audit), audit);
  const drain = await action(page, 'Drain');
  check('console: drain closes admission', /"admission": "closed"/.test(drain), drain);
  check('console: reopen after drain', /"admission": "open"/.test(await action(page, 'Open admission')));

  const p99 = await until('a p99 figure', async () => {
    const text = await textOf(page, '#p99');
    return /ms/.test(text) ? text : null;
  }, 12000);
  check('console: p99 ack latency from /metrics', /≤ [\d.]+ ms/.test(p99), p99);
  await until('refusals by reason', async () => /admission_closed/.test(await textOf(page, '#refusals')), 12000);
  check('console: refusals by reason list admission_closed', true);
  check('console: no incident banner', await page.locator('#incident').isHidden());
  await page.screenshot({ path: `${shots}/console.png`, fullPage: true });
}

async function spectatorSteps(page) {
  await page.goto(`${base}/spectate`);
  await until('the viewer to draw players', async () => (await page.locator('#scores tr').count()) >= probes.players);
  const proof = await textOf(page, '#arena-proof');
  check('spectate: the drawn frame is verified', /proofs of P and B verified/.test(proof), proof);
  const before = await players(page);
  const tickBefore = Number(await page.getAttribute('#arena', 'data-tick'));
  await until('players to move', async () => {
    const after = await players(page);
    const moved = after.filter((row) => {
      const old = before.find((b) => b[0] === row[0]);
      return old && (old[1] !== row[1] || old[2] !== row[2]);
    });
    return moved.length > 0;
  });
  check('spectate: players move', Number(await page.getAttribute('#arena', 'data-tick')) > tickBefore);
  const painted = await page.$eval('#arena', (canvas) => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let colored = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0 && (data[i] !== data[i + 1] || data[i + 1] !== data[i + 2])) colored += 1;
    return colored;
  });
  check('spectate: the canvas has colored players on it', painted > 100, `${painted} colored pixels`);
  await page.screenshot({ path: `${shots}/spectate.png`, fullPage: true });
}

async function restartSteps(consolePage, spectatePage) {
  allowed.offline = true;
  allowed.statuses.add(503);
  await ask('restart');
  const back = await until('the console to say it was away', async () => {
    const text = await textOf(consolePage, '#connection');
    return /live again: the node was away/.test(text) ? text : null;
  }, 30000);
  check('console: reconnects and says it was away', /resumed after tick \d+/.test(back), back);
  const spectating = await until('the spectator to come back', async () => {
    const text = await textOf(spectatePage, '#connection');
    return /live again after/.test(text) ? text : null;
  }, 30000);
  check('spectate: reconnects after the restart', true, spectating);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  allowed.offline = false;
  allowed.statuses.delete(503);
}

async function incidentSteps(page) {
  await page.fill('#token', token);
  await page.click('#token-set');
  await ask('corrupt');
  // From now on the lineage is not published: 503 `incident` is expected.
  allowed.statuses.add(503);
  const audit = await action(page, 'Audit');
  check('console: audit finds the incident', /"result": "incident"/.test(audit), audit);
  const banner = await until('the incident banner', async () => {
    if (await page.locator('#incident').isHidden()) return null;
    return textOf(page, '#incident');
  });
  check('console: the incident banner shows', /Incident: divergence at tick \d+/.test(banner), banner);
  check('console: admission shows closed under incident', (await textOf(page, '#admission')) === 'closed');
  await page.screenshot({ path: `${shots}/console-incident.png`, fullPage: true });
}

async function phoneSteps(browser) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  watch(page, 'phone');
  await page.goto(`${base}/`);
  await until('the world id', async () => (await textOf(page, '#world')) === probes.world);
  await until('ticks or the banner', async () => !(await page.locator('#incident').isHidden()));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((element) => element.getBoundingClientRect().right > window.innerWidth + 1)
    .slice(0, 5).map((element) => `${element.tagName}#${element.id}.${element.className} ${Math.round(element.getBoundingClientRect().width)}px`).join(', '));
  check('phone: the console fits a 390 px screen', overflow <= 0, `${overflow} px too wide: ${wide}`);
  await page.screenshot({ path: `${shots}/console-phone.png`, fullPage: false });
  await context.close();
}

async function main() {
  const browser = await launch();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
    const consolePage = await context.newPage();
    watch(consolePage, 'console');
    await consoleSteps(consolePage);
    const spectatePage = await context.newPage();
    watch(spectatePage, 'spectate');
    await spectatorSteps(spectatePage);
    await restartSteps(consolePage, spectatePage);
    allowed.offline = true;
    await spectatePage.close();
    allowed.offline = false;
    await incidentSteps(consolePage);
    await phoneSteps(browser);
    await context.close();
  } catch (error) {
    check('the run completes', false, error.stack);
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        const text = await page.evaluate(() => document.body.innerText).catch(() => '');
        console.log(`page ${page.url()} shows:\n${text.slice(0, 1500)}`);
      }
    }
  } finally {
    await browser.close();
  }
  for (const problem of problems) check('no page error or failed request', false, problem);
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main();
