// A single-page app signed in through siwa-server's web flow with siwa-kit's browser mode:
// the session is the server's HttpOnly cookie; the page holds an access token in memory only.
import { SiwaWebClient } from '/siwa-kit/browser.js';

const { serverUrl } = await (await fetch('/config.json')).json();
const siwa = new SiwaWebClient({ serverUrl });
// For the console (and the tests): window.siwa.accessToken(), window.siwa.currentUser()...
window.siwa = siwa;

const $ = (id) => document.getElementById(id);
const say = (text) => ($('status').textContent = text);

function show(user) {
  $('signed-in').hidden = !user;
  $('signed-out').hidden = !!user;
  if (!user) return;
  $('name').textContent = [user.givenName, user.familyName].filter(Boolean).join(' ') || 'Not shared';
  $('email').textContent = user.email ?? 'Not shared';
  $('user-id').textContent = user.id;
}
siwa.onChange((user) => {
  show(user);
  say(user ? 'Signed in.' : 'Signed out.');
});

const failed = (error) => say(`Failed: ${error.code}${error.retryLater ? ' (try again later)' : ''}`);

$('popup').onclick = () => siwa.signIn({ mode: 'popup' }).catch(failed);
$('redirect').onclick = () => siwa.signIn({ mode: 'redirect' });
$('call-api').onclick = async () => {
  try {
    const token = await siwa.accessToken();
    const answer = await fetch(new URL('v1/me', serverUrl), { headers: { authorization: `Bearer ${token}` } });
    $('api-answer').textContent = `GET /v1/me: ${answer.status}`;
  } catch (error) {
    failed(error);
  }
};
$('sign-out').onclick = () => siwa.signOut().catch(failed);
$('delete').onclick = () => {
  if (confirm('Delete your account? This cannot be undone.')) siwa.deleteAccount().catch(failed);
};

// Back from a redirect sign-in: an error in the address bar, or the cookie's user.
const error = siwa.redirectError();
const user = await siwa.currentUser().catch((e) => (failed(e), null));
show(user);
if (error) failed(error);
else say(user ? 'Signed in.' : 'Signed out.');
