// What the browser scripts share: Debian's headless chromium with the flags
// this machine needs, a tally of checks, waiting for a condition, and the
// rule that any page error, console error, failed request or non-2xx answer
// fails the run.
import { chromium } from 'playwright-core';

/** Debian's chromium (or $CHROMIUM), headless, with no background traffic. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** Polls `predicate` every 200 ms until it returns something truthy. */
export async function until(what, predicate, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await predicate();
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Checks, counted and printed; the page problems seen; the exit. */
export class Tally {
  constructor(name) {
    this.name = name;
    this.passed = 0;
    this.failed = 0;
    this.problems = [];
  }

  check(what, ok, detail = '') {
    if (ok) { this.passed += 1; console.log(`ok ${what}`); } else { this.failed += 1; console.log(`FAIL ${what} ${detail}`); }
  }

  /** Records every page error, console error, failed request and non-2xx. */
  watch(page, prefix = '') {
    page.on('pageerror', (error) => this.problems.push(`${prefix}page error: ${error.message}`));
    page.on('console', (message) => { if (message.type() === 'error') this.problems.push(`${prefix}console error: ${message.text()}`); });
    page.on('requestfailed', (request) => this.problems.push(`${prefix}request failed: ${request.url()} ${request.failure()?.errorText}`));
    page.on('response', (response) => { if (response.status() >= 400) this.problems.push(`${prefix}${response.status()} from ${response.url()}`); });
  }

  /** Prints "<name>: N passed, M failed" and exits 0 only if all passed. */
  finish() {
    for (const problem of this.problems) this.check('no page error or failed request', false, problem);
    console.log(`${this.name}: ${this.passed} passed, ${this.failed} failed`);
    process.exit(this.failed === 0 && this.passed > 0 ? 0 : 1);
  }
}
