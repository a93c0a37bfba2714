// The pages over the node's TLS: both load, the console's head tick
// advances and the arena viewer draws a verified frame, with no page error,
// console error or failed request. The certificate is the test's own
// self-signed one, so certificate errors are ignored for this origin only.
// Usage: node tls.mjs <https base url>. Prints "N passed, M failed".
import { Tally, launch, until } from './harness.mjs';

const [base] = process.argv.slice(2);
const tally = new Tally('tls');
const check = (what, ok, detail) => tally.check(what, ok, detail);

const browser = await launch();
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  for (const path of ['/', '/spectate']) {
    const page = await context.newPage();
    tally.watch(page, `${path}: `);
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
tally.finish();
