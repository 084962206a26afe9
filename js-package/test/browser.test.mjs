// Browser mode in headless Chromium (Debian's, driven by playwright-core): the example app on
// app.siwa.test and siwa-server on auth.siwa.test (one site, two hosts: Chromium's host
// resolver rules map them to 127.0.0.1), the fake Apple on localhost (another site), started
// by scripts/test-js.sh (SIWA_AUTH, SIWA_APP_PORT, SIWA_MOCK). Access tokens live 8 s.
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { handler } from '../examples/web/serve.mjs';
import { assert, suite } from './harness.mjs';

const auth = process.env.SIWA_AUTH;
const appPort = Number(process.env.SIWA_APP_PORT);
const mock = process.env.SIWA_MOCK;
if (!auth || !appPort || !mock) throw new Error('SIWA_AUTH, SIWA_APP_PORT and SIWA_MOCK are needed');
createRequire(import.meta.url); // playwright-core resolves from js-package/node_modules

const app = `http://app.siwa.test:${appPort}`;
// The app's pages; under /coop/ with `Cross-Origin-Opener-Policy: same-origin`, which cuts
// the opener of any popup that leaves the app's origin.
const plain = handler({ serverUrl: auth });
const isolated = handler({ serverUrl: auth, headers: { 'cross-origin-opener-policy': 'same-origin' } });
const appServer = createServer((request, response) => {
  if (request.url.startsWith('/coop/')) {
    request.url = request.url.slice('/coop'.length);
    return isolated(request, response);
  }
  return plain(request, response);
});
await new Promise((resolve) => appServer.listen(appPort, '127.0.0.1', resolve));
// Another site's page (evil.test), and a sibling of the app on the same site (evil.siwa.test).
const evilServer = createServer((request, response) => {
  response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>another site</title>');
});
await new Promise((resolve) => evilServer.listen(0, '127.0.0.1', resolve));
const evil = `http://evil.test:${evilServer.address().port}`;
const sibling = `http://evil.siwa.test:${evilServer.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--host-resolver-rules=MAP *.siwa.test 127.0.0.1, MAP evil.test 127.0.0.1',
    // A secure context, as https would be, so that the app's COOP header applies.
    `--unsafely-treat-insecure-origin-as-secure=${app}`],
});

const counters = async () => (await fetch(`${mock}/mock/counters`)).json();

/** A fresh browser profile at the app's page. */
async function openApp(path = '/', init) {
  const context = await browser.newContext();
  const page = await context.newPage();
  if (init) await page.addInitScript(init);
  await page.goto(`${app}${path}`);
  await page.locator('#status').filter({ hasNotText: 'Loading' }).waitFor();
  return { context, page };
}

/** Answers the fake Apple's consent page in `page` (Continue or Cancel). */
async function consent(page, choice = 'Continue') {
  await page.getByRole('button', { name: choice }).click();
}

/** A popup sign-in from the app's button: the popup, once consented, closes by itself. */
async function popupSignIn(page) {
  const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#popup')]);
  await popup.waitForLoadState();
  await consent(popup);
  await popup.waitForEvent('close', { timeout: 15000 });
  await page.locator('#signed-in').waitFor({ state: 'visible', timeout: 15000 });
  return popup;
}

/** Nothing a script of the page can read holds a token. */
async function assertNoTokenInStorage(page) {
  const found = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }, document.cookie]));
  assert.ok(!/eyJ|siwa_session|refresh/i.test(found), `a script can read: ${found}`);
}

const t = suite('browser mode');

await t.test('popup: signed in with the opener kept; the access token is accepted by /v1/me', async () => {
  const { context, page } = await openApp();
  const popup = await popupSignIn(page);
  assert.ok(popup.isClosed());
  assert.notEqual(await page.textContent('#name'), 'Not shared');
  await page.click('#call-api');
  await page.locator('#api-answer', { hasText: 'GET /v1/me: 200' }).waitFor();
  await assertNoTokenInStorage(page);
  await context.close();
});

await t.test('the access token is fetched again once due, one request for concurrent callers', async () => {
  const { context, page } = await openApp();
  await popupSignIn(page);
  let requests = 0;
  page.on('request', (r) => r.url().endsWith('/v1/web/token') && r.method() === 'POST' && (requests += 1));
  const first = await page.evaluate(async () => {
    const tokens = await Promise.all([1, 2, 3, 4, 5].map(() => window.siwa.accessToken()));
    return [...new Set(tokens)];
  });
  assert.equal(first.length, 1);
  assert.equal(requests, 1, 'concurrent callers share one request');
  // 8 s tokens: due 2 s before they expire.
  await page.waitForTimeout(6500);
  const second = await page.evaluate(() => window.siwa.accessToken());
  assert.notEqual(second, first[0]);
  const status = await page.evaluate(async ([server, token]) =>
    (await fetch(new URL('v1/me', server), { headers: { authorization: `Bearer ${token}` } })).status, [auth, second]);
  assert.equal(status, 200);
  await context.close();
});

await t.test('sign-out ends the session; the page is signed out after a reload', async () => {
  const { context, page } = await openApp();
  await popupSignIn(page);
  const token = await page.evaluate(() => window.siwa.accessToken());
  await page.click('#sign-out');
  await page.locator('#signed-out').waitFor({ state: 'visible' });
  const me = await fetch(`${auth}/v1/me`.replace('auth.siwa.test', '127.0.0.1'), { headers: { authorization: `Bearer ${token}` } });
  assert.equal((await me.json()).error, 'session_ended');
  await page.reload();
  await page.locator('#signed-out').waitFor({ state: 'visible' });
  const code = await page.evaluate(() => window.siwa.accessToken().then(() => 'ok', (e) => e.code));
  assert.equal(code, 'session_expired');
  await context.close();
});

await t.test('redirect: the whole page goes to Apple and comes back signed in', async () => {
  const { context, page } = await openApp('/?tab=2');
  await page.click('#redirect');
  await page.waitForURL(/localhost/);
  await consent(page);
  await page.waitForURL(`${app}/?tab=2`);
  await page.locator('#signed-in').waitFor({ state: 'visible' });
  await assertNoTokenInStorage(page);
  await context.close();
});

await t.test('redirect: cancelling at Apple comes back with the error, taken off the address bar', async () => {
  const { context, page } = await openApp();
  await page.click('#redirect');
  await page.waitForURL(/localhost/);
  await consent(page, 'Cancel');
  await page.waitForURL(/^http:\/\/app\.siwa\.test/);
  await page.locator('#status', { hasText: 'Failed: cancelled' }).waitFor();
  assert.ok(!page.url().includes('siwa_error'), page.url());
  await context.close();
});

await t.test('popup: cancelling at Apple rejects with cancelled', async () => {
  const { context, page } = await openApp();
  const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#popup')]);
  await popup.waitForLoadState();
  await consent(popup, 'Cancel');
  await page.locator('#status', { hasText: 'Failed: cancelled' }).waitFor({ timeout: 15000 });
  await context.close();
});

await t.test('a blocked popup fails with popup_blocked, or falls back to a redirect', async () => {
  const blocked = () => { window.open = () => null; };
  const { context, page } = await openApp('/', blocked);
  const code = await page.evaluate(() => window.siwa.signIn({ mode: 'popup', onPopupBlocked: 'fail' }).then(() => 'ok', (e) => e.code));
  assert.equal(code, 'popup_blocked');
  await page.click('#popup');
  await page.waitForURL(/localhost/);
  await consent(page);
  await page.waitForURL(`${app}/`);
  await page.locator('#signed-in').waitFor({ state: 'visible' });
  await context.close();
});

await t.test('an opener cut by the app\'s own COOP: the app learns the outcome from the server', async () => {
  const { context, page } = await openApp('/coop/');
  const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#popup')]);
  await popup.waitForLoadState();
  assert.equal(await popup.evaluate(() => window.opener), null, 'the opener was not cut');
  await consent(popup);
  await popup.waitForEvent('close', { timeout: 15000 });
  await page.locator('#signed-in').waitFor({ state: 'visible', timeout: 15000 });
  await context.close();
});

await t.test('deleting the account revokes at Apple and signs the page out', async () => {
  const { context, page } = await openApp();
  await popupSignIn(page);
  const before = (await counters()).revoke ?? 0;
  page.on('dialog', (dialog) => dialog.accept());
  await page.click('#delete');
  await page.locator('#signed-out').waitFor({ state: 'visible' });
  assert.ok(((await counters()).revoke ?? 0) > before, 'Apple was not asked to revoke');
  assert.equal(await page.evaluate(() => window.siwa.currentUser()), null);
  await context.close();
});

await t.test('attack: pages of another site and of a sibling host get no token and no CORS answer', async () => {
  const { context, page } = await openApp();
  await popupSignIn(page);
  for (const origin of [evil, sibling]) {
    const other = await context.newPage();
    await other.goto(`${origin}/`);
    const outcome = await other.evaluate(async (server) => {
      const tries = [
        fetch(new URL('v1/web/token', server), { method: 'POST', credentials: 'include', headers: { 'x-siwa-request': '1' } }),
        fetch(new URL('v1/web/session', server), { credentials: 'include' }),
        fetch(new URL('v1/web/token', server), { method: 'POST', credentials: 'include', mode: 'no-cors' }),
      ];
      return Promise.all(tries.map((p) => p.then((r) => `${r.type}:${r.status}`, (e) => e.name)));
    }, auth);
    // CORS refuses the first two; the no-cors one is opaque (and refused at the server).
    assert.deepEqual(outcome, ['TypeError', 'TypeError', 'opaque:0'], origin);
    await other.close();
  }
  await assertNoTokenInStorage(page);
  await context.close();
});

await t.test('attack: a returnTo on an unlisted origin is refused', async () => {
  const { context, page } = await openApp();
  const response = await page.goto(`${auth}/v1/web/sign-in?` + new URLSearchParams({ return_to: `${evil}/`, mode: 'redirect' }));
  assert.equal(response.status(), 400);
  assert.ok((await page.content()).includes('return_to_not_allowed'));
  await context.close();
});

await t.test('attack: a page that opens the popup itself receives no message', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${evil}/`);
  await page.evaluate(() => {
    window.messages = [];
    window.addEventListener('message', (e) => window.messages.push(String(e.origin)));
  });
  const start = `${auth}/v1/web/sign-in?` + new URLSearchParams({ return_to: `${app}/`, mode: 'popup' });
  const [popup] = await Promise.all([
    page.waitForEvent('popup'),
    page.evaluate((url) => { window.open(url, 'x', 'popup'); }, start),
  ]);
  await popup.waitForLoadState();
  await consent(popup);
  await popup.waitForEvent('close', { timeout: 15000 });
  await page.waitForTimeout(500);
  assert.deepEqual(await page.evaluate(() => window.messages), []);
  await context.close();
});

await browser.close();
appServer.close();
evilServer.close();
process.exit(t.done() === 0 ? 0 : 1);
