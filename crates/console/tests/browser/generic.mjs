// A world whose viewer the node will not serve: the spectator page says why
// and shows the generic view (recent ticks, watched keys with checked
// proofs), with no page error, console error or failed request.
// Usage: node generic.mjs <base url>. Prints "N passed, M failed".
import { Tally, launch, until } from './harness.mjs';

const [base] = process.argv.slice(2);
const tally = new Tally('generic');
const check = (what, ok, detail) => tally.check(what, ok, detail);

const browser = await launch();
try {
  const page = await browser.newPage();
  tally.watch(page);
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
  const space = await until('the key space listed', async () => {
    const texts = await page.$$eval('#generic-space tr', (all) => all.map((row) => row.textContent));
    return texts.length >= 2 ? texts : null;
  });
  check('generic view: the key space is listed, with keys as text', space.some((text) => text.startsWith('57W')), space.join(' | '));
  check('generic view: the listing says how many keys the state holds', /keys in the state/.test(await page.textContent('#generic-space-summary')));
  const pick = page.locator('#generic-space button:not([disabled])').first();
  const picked = (await pick.getAttribute('aria-label')).replace('watch key ', '');
  await pick.click();
  // What the rows last said, for the failure's message.
  let lastRows = [];
  const watchedNow = await until('the picked key watched and verified', async () => {
    const texts = await page.$$eval('#generic-keys tr', (all) => all.map((row) => row.textContent));
    lastRows = texts;
    return texts.length === 3 && texts.every((text) => /verified \(depth \d+/.test(text)) ? texts : null;
  }).catch((error) => {
    throw new Error(`${error.message}; picked ${picked}; the rows: ${lastRows.join(' | ')}`);
  });
  check('generic view: a key picked from the key space is read with its proof', watchedNow.some((text) => text.startsWith(picked)), `${picked}: ${watchedNow.join(' | ')}`);
  await until('recent ticks', async () => (await page.locator('#generic-ticks li').count()) >= 3);
  check('generic view: recent ticks are listed', true);
  await until('a recorded change of P', async () => (await page.locator('#generic-changes li').count()) >= 1);
  check('generic view: changes of watched keys are logged', /key 50/.test(await page.textContent('#generic-changes')));
} catch (error) {
  check('the run completes', false, error.stack);
} finally {
  await browser.close();
}
tally.finish();
