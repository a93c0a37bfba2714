// A world whose viewer the node will not serve: the spectator page says why
// and shows the generic view (recent ticks, watched keys with checked
// proofs), with no page error, console error or failed request.
// Usage: node generic.mjs <base url>. Prints "N passed, M failed".
import { chromium } from 'playwright-core';

const [base] = process.argv.slice(2);
let passed = 0;
let failed = 0;
const problems = [];
const check = (name, ok, detail = '') => {
  if (ok) { passed += 1; console.log(`ok ${name}`); } else { failed += 1; console.log(`FAIL ${name} ${detail}`); }
};

async function until(what, predicate, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await predicate();
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => { if (message.type() === 'error') problems.push(`console error: ${message.text()}`); });
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
  page.on('response', (response) => { if (response.status() >= 400) problems.push(`${response.status()} from ${response.url()}`); });
  await page.goto(`${base}/spectate?keys=57,text:P`);
  const state = await until('the viewer state', async () => {
    const text = await page.textContent('#viewer-state');
    return /not served/.test(text) ? text : null;
  });
  check('broken viewer: the page says why', /changed on disk/.test(state), state);
  const rows = await until('both watched keys verified', async () => {
    const texts = await page.$$eval('#generic-keys tr', (all) => all.map((row) => row.textContent));
    return texts.length === 2 && texts.every((text) => /verified \(depth \d+/.test(text)) ? texts : null;
  });
  check('generic view: watched keys are read with checked proofs', rows.some((text) => text.startsWith('50')), rows.join(' | '));
  await until('recent ticks', async () => (await page.locator('#generic-ticks li').count()) >= 3);
  check('generic view: recent ticks are listed', true);
  await until('a recorded change of P', async () => (await page.locator('#generic-changes li').count()) >= 1);
  check('generic view: changes of watched keys are logged', /key 50/.test(await page.textContent('#generic-changes')));
} catch (error) {
  check('the run completes', false, error.stack);
} finally {
  await browser.close();
}
for (const problem of problems) check('no page error or failed request', false, problem);
console.log(`generic: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
