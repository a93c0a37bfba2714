// The manager console in a real browser, against a real manager with one
// running world: the worlds table shows it running, selecting it shows its
// operation log, and with the token the page stops and starts it again,
// showing each answer. Any page error, console error, failed request or
// non-2xx fails it.
// Usage: node manager.mjs <base url> <token> <world> <package path>.
// Prints "manager: N passed, M failed".
import { Tally, launch, until as wait } from './harness.mjs';

const [base, token, world, pkg] = process.argv.slice(2);
const tally = new Tally('manager');
const check = (what, ok, detail) => tally.check(what, ok, detail);
const until = (what, predicate, timeoutMs = 60000) => wait(what, predicate, timeoutMs);

const rowOf = async (page) => {
  const rows = await page.$$eval('#worlds tr', (all) => all.map((row) => row.textContent));
  return rows.find((text) => text.startsWith(world));
};

const browser = await launch();
try {
  const page = await browser.newPage();
  tally.watch(page);
  await page.goto(`${base}/`);
  const running = await until('the world listed running', async () => {
    const row = await rowOf(page);
    return row && /running/.test(row) ? row : null;
  });
  check('the worlds table lists the world running', true, running);
  check('the page says it is connected', /connected/.test(await page.textContent('#connection')));
  await page.click(`#worlds tr[data-world="${world}"]`);
  const log = await until('the operation log', async () => {
    const text = await page.textContent('#operations');
    return /start/.test(text) ? text : null;
  });
  check('selecting the world shows its operation log', /admin_rest/.test(log), log);
  check('selecting the world shows its record', /engine_endpoint/.test(await page.textContent('#record')));
  const stop = page.locator('button[data-op="stop"]');
  check('actions are off without a token', await stop.isDisabled());
  await page.fill('#token', token);
  await page.click('#token-form button[type="submit"]');
  check('the token enables the actions', !(await stop.isDisabled()));
  await stop.click();
  const stopped = await until('the stop answer', async () => {
    const text = await page.textContent('#result');
    return /"status": "stopped"/.test(text) ? text : null;
  });
  check('stop shows the manager\'s answer', true, stopped.slice(0, 80));
  await until('the world listed stopped', async () => /stopped/.test((await rowOf(page)) ?? ''));
  check('the worlds table follows the stop', true);
  await page.fill('#action-package', pkg);
  await page.click('button[data-op="start"]');
  await until('the start answer', async () => /"status": "running"/.test(await page.textContent('#result')));
  check('start from the page runs the world again', true);
  await until('the world listed running again', async () => /running/.test((await rowOf(page)) ?? ''));
  const after = await until('stop and start in the log', async () => {
    const text = await page.textContent('#operations');
    return /stop/.test(text) && (text.match(/start/g) ?? []).length >= 2 ? text : null;
  });
  check('the operation log shows the page\'s stop and start', true, after.slice(0, 80));
} catch (error) {
  check('the run completes', false, error.stack);
} finally {
  await browser.close();
}
tally.finish();
