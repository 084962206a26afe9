// A browser for the Kotlin tests' LoopbackBrowserSignIn: opens a sign-in URL in headless
// Chromium, answers the fake Apple's consent page (Continue or Cancel), and follows the
// redirects until the browser reaches the app's loopback callback.
//
//   node consent.mjs <url> [continue|cancel|continue-as:<sub>]
import { chromium } from 'playwright-core';

const [url, choice = 'continue'] = process.argv.slice(2);
if (!url) throw new Error('usage: node consent.mjs <url> [continue|cancel|continue-as:<sub>]');
// `continue-as:<sub>`: the Apple Account of that test user (mock-apple's /mock/users), not the first.
const sub = choice.startsWith('continue-as:') ? choice.slice('continue-as:'.length) : null;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // *.siwa.test: the JavaScript client's tests put the server on auth.siwa.test.
  args: ['--no-sandbox', '--host-resolver-rules=MAP *.siwa.test 127.0.0.1', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(url);
  if (sub) await page.locator('select[name=sub]').selectOption(sub);
  await page.getByRole('button', { name: choice === 'cancel' ? 'Cancel' : 'Continue' }).click();
  await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback/, { timeout: 20000, waitUntil: 'commit' });
  console.log(`callback: ${page.url()}`);
  await page.getByText('You can close this window').waitFor({ timeout: 5000 });
} finally {
  await browser.close();
}
