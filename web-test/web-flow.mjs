// The web flow end to end, in headless Chromium, against a real siwa-server and mock-apple on
// two different sites (the server at 127.0.0.1, the fake Apple at localhost), so that Apple's
// form post is really cross-site and Chromium's default cookie rules apply.
//
// Run by scripts/test-web.sh, which starts both and sets SIWA_SERVER, SIWA_MOCK,
// SIWA_APP_REDIRECT and SIWA_SCREENSHOTS. Each step is screenshotted at a desktop and a phone size.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { strict as assert } from 'node:assert';
import { chromium } from 'playwright-core';

const server = process.env.SIWA_SERVER;
const mock = process.env.SIWA_MOCK;
const appRedirect = process.env.SIWA_APP_REDIRECT;
const shots = process.env.SIWA_SCREENSHOTS;
for (const [name, value] of Object.entries({ SIWA_SERVER: server, SIWA_MOCK: mock, SIWA_APP_REDIRECT: appRedirect, SIWA_SCREENSHOTS: shots })) {
  if (!value) throw new Error(`${name} is not set`);
}
mkdirSync(shots, { recursive: true });

const SIZES = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 390, height: 844 },
];

let passed = 0;
let failed = 0;
async function step(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`not ok - ${name}\n  ${String(error.stack || error).split('\n').join('\n  ')}`);
  }
}

async function screenshot(page, name) {
  const original = page.viewportSize();
  for (const size of SIZES) {
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.screenshot({ path: `${shots}/${name}-${size.name}.png`, fullPage: true });
  }
  await page.setViewportSize(original);
}

// axe-core, evaluated through the DevTools protocol: the page's policy allows no script of its
// own, and the check must not need one.
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
async function assertAccessible(page, what) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  const found = result.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(found, [], `axe-core on ${what}`);
}

async function counters() {
  const response = await fetch(`${mock}/mock/counters`);
  return response.json();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
// Apple's form posts to the callback, kept to replay one.
const callbackPosts = [];
page.on('request', (request) => {
  if (request.method() === 'POST' && request.url() === `${server}/v1/web/callback`) {
    callbackPosts.push(request.postData());
  }
});

async function continueAtApple({ firstName, lastName, hideEmail } = {}) {
  await page.waitForURL((url) => url.href.startsWith(`${mock}/auth/authorize`));
  if (firstName !== undefined) await page.fill('input[name=first_name]', firstName);
  if (lastName !== undefined) await page.fill('input[name=last_name]', lastName);
  if (hideEmail) await page.check('input[name=email_choice][value=hide]');
}

await step('the page shows the Sign in with Apple button', async () => {
  const response = await page.goto(`${server}/`);
  assert.equal(response.status(), 200);
  const csp = response.headers()['content-security-policy'];
  assert.match(csp, /default-src 'none'/);
  const button = page.locator('a.apple-button');
  assert.equal((await button.innerText()).trim(), 'Sign in with Apple');
  assert.equal(await button.locator('svg path').count(), 1, 'the Apple logo is an inline SVG');
  const style = await button.evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.equal(style, 'rgb(0, 0, 0)', 'the button is black');
  assert.equal(await button.getAttribute('role'), null, 'a link, announced and activated as one');
  const favicon = await fetch(`${server}/favicon.ico`);
  assert.equal(favicon.status, 204, 'no 404 for the favicon on every load');
  await assertAccessible(page, 'the signed-out page');
  await screenshot(page, '01-signed-out');
});

await step('first sign-in: a name and Hide My Email at Apple, back signed in', async () => {
  await page.click('a.apple-button');
  await continueAtApple({ firstName: 'Ada', lastName: 'Lovelace', hideEmail: true });
  await screenshot(page, '02-apple-consent');
  await page.click('button[value=continue]');
  await page.waitForURL(`${server}/`);
  assert.equal(await page.innerText('#user-name'), 'Ada Lovelace');
  const email = await page.innerText('#user-email');
  assert.match(email, /@privaterelay\.appleid\.com/);
  assert.match(email, /Hide My Email/);
  const [cookie] = (await context.cookies(server)).filter((c) => c.name === 'siwa_session');
  assert.ok(cookie, 'the session cookie is set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Lax');
  await assertAccessible(page, 'the signed-in page');
  await screenshot(page, '03-signed-in');
});

await step('a reload keeps the user signed in', async () => {
  await page.reload();
  assert.equal(await page.innerText('#user-name'), 'Ada Lovelace');
});

await step('sign out', async () => {
  await page.click('text=Sign out');
  await page.waitForURL(`${server}/?notice=signed_out`);
  assert.equal(await page.locator('a.apple-button').count(), 1);
  assert.match(await page.innerText('.banner'), /signed out/);
  await screenshot(page, '04-signed-out-again');
});

await step('a second sign-in (no user field from Apple) still shows the name', async () => {
  const before = callbackPosts.length;
  await page.click('a.apple-button');
  await continueAtApple();
  assert.equal(await page.locator('input[name=first_name]').count(), 0, 'Apple asks for the name only once');
  await page.click('button[value=continue]');
  await page.waitForURL(`${server}/`);
  assert.ok(!new URLSearchParams(callbackPosts[before]).has('user'), 'no user field the second time');
  assert.equal(await page.innerText('#user-name'), 'Ada Lovelace');
  await screenshot(page, '05-signed-in-again');
});

await step('a replayed state is refused', async () => {
  const replay = await page.request.post(`${server}/v1/web/callback`, {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    data: callbackPosts[callbackPosts.length - 1],
    maxRedirects: 0,
  });
  assert.equal(replay.status(), 400);
  assert.match(await replay.text(), /invalid_state/);
  assert.ok(!replay.headers()['set-cookie'], 'no session for a replay');
});

await step('delete the account after confirming; Apple receives the revocation', async () => {
  // The second sign-in replaced the stored grant without revoking the first: that would have
  // ended the whole authorization. The revocation queue (polled every second here) stays idle.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const revokedBefore = (await counters()).revoke;
  assert.equal(revokedBefore, 0, 'a new sign-in revokes nothing at Apple');
  await page.click('summary:has-text("Delete account")');
  await screenshot(page, '06-delete-confirmation');
  await page.click('text=Delete my account');
  await page.waitForURL(`${server}/?notice=deleted`);
  assert.match(await page.innerText('.banner'), /deleted/);
  assert.equal((await counters()).revoke, revokedBefore + 1);
  await screenshot(page, '07-deleted');
});

await step('login CSRF: an attacker\'s captured callback signs the victim in nowhere', async () => {
  // The attacker consents with their own Apple Account and stops their browser's form post.
  let captured;
  await page.route(`${server}/v1/web/callback`, (route) => {
    captured = route.request().postData();
    return route.abort();
  });
  await page.goto(`${server}/`);
  await page.click('a.apple-button');
  await continueAtApple();
  await page.click('button[value=continue]');
  await new Promise((resolve) => { const wait = () => (captured ? resolve() : setTimeout(wait, 50)); wait(); });
  await page.unroute(`${server}/v1/web/callback`);
  const fields = Object.fromEntries(new URLSearchParams(captured));
  assert.ok(fields.state && fields.code && fields.id_token, 'the form post was captured');

  // The victim, in a browser of their own, opens a page on a third site that posts it.
  const thirdSite = createServer((request, response) => {
    const inputs = Object.entries(fields)
      .map(([name, value]) => `<input type="hidden" name="${name}" value="${value.replace(/"/g, '&quot;')}">`)
      .join('');
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end(`<!doctype html><title>Win a prize</title><form method="post" action="${server}/v1/web/callback">${inputs}</form><script>document.forms[0].submit()</script>`);
  });
  await new Promise((resolve) => thirdSite.listen(0, '127.0.0.2', resolve));
  const evil = `http://127.0.0.2:${thirdSite.address().port}/`;
  const victim = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const victimPage = await victim.newPage();
  await victimPage.goto(evil);
  await victimPage.waitForURL(`${server}/v1/web/callback`);
  assert.match(await victimPage.innerText('.banner'), /callback_origin_invalid/);
  await screenshot(victimPage, '08-login-csrf-refused');

  // The attacker posts the fields themselves and sends the victim the completion link: the
  // victim's browser has no binding cookie for it.
  const posted = await fetch(`${server}/v1/web/callback`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: captured, redirect: 'manual',
  });
  assert.equal(posted.status, 303);
  const completion = posted.headers.get('location');
  assert.match(completion, /^\/v1\/web\/complete\?handle=/);
  const lured = await victimPage.goto(`${server}${completion}`);
  assert.equal(lured.status(), 400);
  assert.match(await victimPage.innerText('.banner'), /invalid_state/);
  const victimCookies = (await victim.cookies(server)).filter((c) => c.name === 'siwa_session');
  assert.equal(victimCookies.length, 0, 'the victim is signed in as no one');
  await victimPage.goto(`${server}/`);
  assert.equal(await victimPage.locator('a.apple-button').count(), 1);
  await victim.close();
  thirdSite.close();
  await page.goto(`${server}/`);
});

await step('a tampered state is refused with a page, not a dump', async () => {
  await page.click('a.apple-button');
  await continueAtApple();
  await page.evaluate(() => { document.querySelector('input[name=state]').value = 'tampered'; });
  await page.click('button[value=continue]');
  await page.waitForURL(`${server}/v1/web/callback`);
  assert.match(await page.innerText('.banner'), /invalid_state/);
  assert.equal(await page.locator('a.apple-button').count(), 1, 'the user can start again');
  assert.equal((await context.cookies(server)).filter((c) => c.name === 'siwa_session').length, 0);
  await assertAccessible(page, 'an error page');
  await screenshot(page, '09-tampered-state');
});

await step('cancelling at Apple brings the user back to the page', async () => {
  await page.goto(`${server}/`);
  await page.click('a.apple-button');
  await continueAtApple();
  await page.click('button[value=cancel]');
  await page.waitForURL(`${server}/?notice=cancelled`);
  assert.match(await page.innerText('.banner'), /cancelled/);
  await screenshot(page, '10-cancelled');
});

await step('a native app: the browser ends at its redirect URI with a code it trades once', async () => {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  // The app's side of the redirect: a loopback listener, as a desktop app has (RFC 8252, 7.3).
  let landed;
  const app = createServer((request, response) => {
    const url = new URL(request.url, appRedirect);
    if (url.pathname === appUrl.pathname) landed = url.href;
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end('<!doctype html><title>App</title><p style="font:20px sans-serif;margin:40px">Back in the app.</p>');
  });
  const appUrl = new URL(appRedirect);
  await new Promise((resolve) => app.listen(Number(appUrl.port), appUrl.hostname, resolve));
  const start = `${server}/v1/web/sign-in?app_redirect_uri=${encodeURIComponent(appRedirect)}&code_challenge=${challenge}&code_challenge_method=S256`;
  await page.goto(start);
  // Apple remembers the authorization given during the tampered-state step: no name asked.
  await continueAtApple();
  await page.click('button[value=continue]');
  await page.waitForURL((url) => url.href.startsWith(appRedirect));
  await screenshot(page, '11-native-app-redirect');
  const code = new URL(landed).searchParams.get('code');
  assert.ok(code, `the app URL carries a code: ${landed.replace(/code=[^&]*/, 'code=…')}`);
  const exchange = (body) => fetch(`${server}/v1/auth/exchange`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const wrong = await exchange({ code, codeVerifier: randomBytes(32).toString('base64url') });
  assert.equal(wrong.status, 400);
  assert.equal((await wrong.json()).error, 'code_verifier_mismatch');
  // A wrong verifier spends the code: start again for the real exchange.
  await page.goto(start);
  await page.waitForURL((url) => url.href.startsWith(`${mock}/auth/authorize`));
  await page.click('button[value=continue]');
  await page.waitForURL((url) => url.href.startsWith(appRedirect));
  const second = new URL(landed).searchParams.get('code');
  const first = await exchange({ code: second, codeVerifier: verifier });
  assert.equal(first.status, 200);
  const answer = await first.json();
  assert.equal(answer.isNewUser, false, 'the first, spent code already made the user');
  assert.ok(answer.session.accessToken && answer.session.refreshToken);
  const me = await fetch(`${server}/v1/me`, { headers: { authorization: `Bearer ${answer.session.accessToken}` } });
  assert.equal(me.status, 200);
  const again = await exchange({ code: second, codeVerifier: verifier });
  assert.equal(again.status, 400);
  assert.equal((await again.json()).error, 'invalid_exchange_code');
  const still = await fetch(`${server}/v1/me`, { headers: { authorization: `Bearer ${answer.session.accessToken}` } });
  assert.equal(still.status, 200, 'the second use ends nothing');
  app.close();
});

await browser.close();
console.log(`web: ${passed} passed, ${failed} failed`);
console.log(`screenshots: ${shots}`);
process.exit(failed === 0 ? 0 : 1);
