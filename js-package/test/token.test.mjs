// Token mode (React Native, Electron, Node) in Node against real siwa-server and mock-apple
// processes, started by scripts/test-js.sh (SIWA_SERVER, SIWA_MOCK, SIWA_CONSENT): what the
// Kotlin client's tests cover, on the same terms. Access tokens live 30 s.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { SiwaClient, InMemorySessionStore } from '../dist/index.js';
import { assert, rejects, suite } from './harness.mjs';

const server = process.env.SIWA_SERVER;
const mock = process.env.SIWA_MOCK;
const consentScript = process.env.SIWA_CONSENT;
if (!server || !mock || !consentScript) throw new Error('SIWA_SERVER, SIWA_MOCK and SIWA_CONSENT are needed');

async function post(url, body, method = 'POST') {
  const response = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: await response.json().catch(() => null) };
}

/** Apple's credential for an attempt, from the fake Apple, as expo-apple-authentication gives it. */
async function credential(attempt, sub) {
  const { status, body } = await post(`${mock}/mock/identity-token`, { clientId: 'com.example.app', nonce: attempt.hashedNonce, ...(sub && { sub }) });
  assert.equal(status, 200, JSON.stringify(body));
  return {
    identityToken: body.identityToken,
    authorizationCode: body.authorizationCode,
    rawNonce: attempt.rawNonce,
    user: body.sub,
    fullName: { givenName: body.givenName, familyName: body.familyName },
    email: body.email,
  };
}

async function signIn(client, sub) {
  return client.completeSignIn(await credential(await client.startSignIn(), sub));
}

const revocations = async () => (await (await fetch(`${mock}/mock/counters`)).json()).revoke ?? 0;

/** A store that keeps its value where the test can see it, as SecureStore would. */
class VisibleStore {
  value = null;
  async get() { return this.value; }
  async set(value) { this.value = value; }
  async delete() { this.value = null; }
}

/** The system browser, played by headless Chromium answering the fake Apple's consent page. */
function consent(url, choice = 'continue') {
  const child = spawn('node', [consentScript, url, choice], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => child.on('exit', resolve));
}

/** The app's loopback redirect: the URL the browser came back to. */
async function loopback() {
  let received;
  const came = new Promise((resolve) => (received = resolve));
  const listener = createServer((request, response) => {
    if (!request.url.startsWith('/callback')) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain' }).end('Signed in. You can close this window.');
    received(`http://127.0.0.1:${listener.address().port}${request.url}`);
  });
  await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve));
  return { uri: `http://127.0.0.1:${listener.address().port}/callback`, came, close: () => listener.close() };
}

async function browserSignIn(client, choice) {
  const app = await loopback();
  try {
    const url = await client.startBrowserSignIn(app.uri);
    const [callbackUrl] = await Promise.all([app.came, consent(url, choice)]);
    return await client.completeBrowserSignIn(callbackUrl);
  } finally {
    app.close();
  }
}

const t = suite('token mode');

await t.test('a session is kept in the store and found by a new client', async () => {
  const store = new VisibleStore();
  const client = await SiwaClient.create({ serverUrl: server, store });
  const user = await signIn(client, '001.js.kept');
  assert.ok(store.value, 'nothing stored');
  const restarted = await SiwaClient.create({ serverUrl: server, store });
  assert.deepEqual(restarted.currentUser(), user);
  assert.equal((await restarted.refreshUser()).id, user.id);
});

await t.test('a fresh short-lived token is not refreshed, and concurrent refreshes are one', async () => {
  const client = await SiwaClient.create({ serverUrl: server });
  await signIn(client, '001.js.concurrent');
  // 30 s tokens: the margin is a quarter of that, so the fresh token is served as it is.
  const first = await Promise.all(Array.from({ length: 20 }, () => client.accessToken()));
  assert.equal(new Set(first).size, 1);
  // Twenty refreshes at once are one rotation (two would end the session as a reuse).
  await Promise.all(Array.from({ length: 20 }, () => client.refreshSession()));
  const after = await Promise.all(Array.from({ length: 20 }, () => client.accessToken()));
  assert.equal(new Set(after).size, 1);
  assert.notEqual(after[0], first[0]);
  await client.refreshUser();
});

await t.test('an access token within its margin is refreshed by itself', async () => {
  const client = await SiwaClient.create({ serverUrl: server, refreshMarginSeconds: 3600 });
  await signIn(client, '001.js.due');
  // A margin longer than the token's life: capped at a quarter of it, so not due at once...
  const token = await client.accessToken();
  const me = await fetch(`${server}/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(me.status, 200);
});

await t.test('signing out ends the session here and at the server', async () => {
  const store = new VisibleStore();
  const client = await SiwaClient.create({ serverUrl: server, store });
  await signIn(client, '001.js.signout');
  const token = await client.accessToken();
  await client.signOut();
  assert.equal(client.currentUser(), null);
  assert.equal(store.value, null, 'the stored session is still there');
  const error = await rejects(client.accessToken(), 'not_signed_in');
  assert.equal(error.meaning, 'sign_in_again');
  const me = await fetch(`${server}/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal((await me.json()).error, 'session_ended');
});

await t.test('signing out with the server down still signs out here', async () => {
  const store = new VisibleStore();
  await signIn(await SiwaClient.create({ serverUrl: server, store }), '001.js.offline');
  const offline = await SiwaClient.create({ serverUrl: 'http://127.0.0.1:9', store });
  assert.ok(offline.currentUser());
  await offline.signOut();
  assert.equal(offline.currentUser(), null);
});

await t.test('deleting the account revokes at Apple', async () => {
  const client = await SiwaClient.create({ serverUrl: server });
  await signIn(client, '001.js.deleted');
  const before = await revocations();
  await client.deleteAccount();
  assert.equal(client.currentUser(), null);
  assert.ok((await revocations()) > before, 'Apple was not asked to revoke');
});

await t.test('a session the server ended is session_expired, and forgotten', async () => {
  const original = new VisibleStore();
  const client = await SiwaClient.create({ serverUrl: server, store: original });
  await signIn(client, '001.js.ended');
  const copy = new VisibleStore();
  copy.value = original.value;
  await (await SiwaClient.create({ serverUrl: server, store: copy })).signOut();
  const error = await rejects(client.refreshSession(), 'session_expired');
  assert.equal(error.meaning, 'sign_in_again');
  assert.equal(client.currentUser(), null);
  assert.equal(original.value, null);
});

await t.test('errors carry no token, nonce or email', async () => {
  const client = await SiwaClient.create({ serverUrl: server });
  const attempt = await client.startSignIn();
  const real = await credential(attempt);
  const forged = { ...real, identityToken: real.identityToken.slice(0, -4) + 'AAAA' };
  const error = await rejects(client.completeSignIn(forged), 'bad_signature');
  const shown = `${error} ${error.message} ${error.code} ${JSON.stringify(error)}`;
  for (const secret of [forged.identityToken.split('.')[2], attempt.rawNonce, attempt.hashedNonce, real.email]) {
    assert.ok(!shown.includes(secret), `the error shows a secret: ${shown}`);
  }
  assert.equal(error.meaning, 'fix_request');
});

await t.test('a credential is sent once; another attempt\'s nonce is refused before sending', async () => {
  const client = await SiwaClient.create({ serverUrl: server });
  const attempt = await client.startSignIn();
  const cred = await credential(attempt, '001.js.once');
  await client.completeSignIn(cred);
  await rejects(client.completeSignIn(cred), 'unknown_attempt');
  const other = await client.startSignIn();
  await rejects(client.completeSignIn({ ...cred, rawNonce: other.rawNonce }), 'nonce_mismatch');
  // Replayed at the server by another client: refused there, and said to need a new sign-in.
  const replay = await fetch(`${server}/v1/auth/apple`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ identityToken: cred.identityToken, rawNonce: cred.rawNonce }),
  });
  assert.match((await replay.json()).error, /^(token_replayed|nonce_replayed)$/);
});

await t.test('Apple down is retry_later, and the same credential goes through once it is back', async () => {
  const client = await SiwaClient.create({ serverUrl: server });
  // A user of the fake Apple's directory: the name comes with their first authorization.
  await post(`${mock}/mock/users`, { sub: '001.js.retried' });
  const attempt = await client.startSignIn();
  const cred = await credential(attempt, '001.js.retried');
  assert.ok(cred.fullName.givenName, 'the first authorization carries no name');
  const fault = await post(`${mock}/mock/faults/token`, { status: 503, count: 1 }, 'PUT');
  assert.ok(fault.status < 300, `the fault was not set: ${fault.status}`);
  const error = await rejects(client.completeSignIn(cred), 'apple_unavailable');
  assert.equal(error.retryLater, true);
  const user = await client.completeSignIn(cred);
  assert.equal(user.givenName, cred.fullName.givenName, 'the first authorization\'s name was lost');
});

await t.test('listeners hear sign-in and sign-out', async () => {
  const client = await SiwaClient.create({ serverUrl: server });
  const heard = [];
  const remove = client.onChange((user) => heard.push(user?.id ?? null));
  const user = await signIn(client, '001.js.listened');
  await client.signOut();
  remove();
  await signIn(client, '001.js.listened');
  assert.deepEqual(heard, [user.id, null]);
});

await t.test('without WebCrypto, the SHA-256 hook is used', async () => {
  let calls = 0;
  const sha256 = async (data) => {
    calls += 1;
    return new Uint8Array(createHash('sha256').update(data).digest());
  };
  const client = await SiwaClient.create({ serverUrl: server, sha256 });
  const user = await signIn(client, '001.js.hooked');
  assert.ok(user.id);
  assert.ok(calls >= 2, `${calls} calls`);
});

await t.test('plain http is refused off loopback', async () => {
  await rejects(SiwaClient.create({ serverUrl: 'http://auth.example.com' }), 'insecure_server_url');
  await rejects(SiwaClient.create({ serverUrl: 'not a url' }), 'invalid_server_url');
});

await t.test('the browser sign-in (PKCE) brings the user back with the first authorization\'s name', async () => {
  const client = await SiwaClient.create({ serverUrl: server });
  const user = await browserSignIn(client, 'continue');
  assert.ok(user.givenName, 'no name on the first authorization');
  assert.deepEqual(client.currentUser(), user);
  await client.accessToken();
});

await t.test('cancelling at Apple in the browser is cancelled', async () => {
  const client = await SiwaClient.create({ serverUrl: server });
  await rejects(browserSignIn(client, 'cancel'), 'cancelled');
  assert.equal(client.currentUser(), null);
});

await t.test('a redirect URI the server does not list fails before the browser opens', async () => {
  const client = await SiwaClient.create({ serverUrl: server });
  await rejects(client.startBrowserSignIn('http://localhost:4321/callback'), 'app_redirect_uri_not_allowed');
  await rejects(client.completeBrowserSignIn('http://localhost:4321/callback?code=x'), 'unknown_attempt');
});

process.exit(t.done() === 0 ? 0 : 1);
