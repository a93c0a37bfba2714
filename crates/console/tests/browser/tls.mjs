// The pages over the node's TLS: both load, the console's head tick
// advances and the arena viewer draws a verified frame, with no page error,
// console error or failed request. The certificate is the test's own
// self-signed one, so certificate errors are ignored for this origin only.
// Usage: node tls.mjs <https base url>. Prints "N passed, M failed".
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
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  for (const path of ['/', '/spectate']) {
    const page = await context.newPage();
    page.on('pageerror', (error) => problems.push(`${path}: page error: ${error.message}`));
    page.on('console', (message) => { if (message.type() === 'error') problems.push(`${path}: console error: ${message.text()}`); });
    page.on('requestfailed', (request) => problems.push(`${path}: request failed: ${request.url()} ${request.failure()?.errorText}`));
    page.on('response', (response) => { if (response.status() >= 400) problems.push(`${path}: ${response.status()} from ${response.url()}`); });
    await page.goto(`${base}${path}`);
    if (path === '/') {
      const first = Number(await until('a head tick', async () => Number(await page.textContent('#head')) || null));
      await until('the head to advance', async () => Number(await page.textContent('#head')) > first);
      check('tls: the console is live', (await page.textContent('#connection')) === 'live');
    } else {
      const proof = await until('a verified frame', async () => {
        const text = await page.textContent('#arena-proof').catch(() => '');
        return /proofs of P and B verified/.test(text) ? text : null;
      });
      check('tls: the spectator draws a verified frame', /proofs of P and B verified/.test(proof), proof);
    }
    check(`tls: ${path} is served over https`, page.url().startsWith('https://'));
  }
} catch (error) {
  check('the run completes', false, error.stack);
} finally {
  await browser.close();
}
for (const problem of problems) check('no page error or failed request', false, problem);
console.log(`tls: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
