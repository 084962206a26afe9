// Browser mode, for single-page apps on the server's site: the server is the app's
// token-mediating backend (draft-ietf-oauth-browser-based-apps). The session is the server's
// HttpOnly cookie; the page holds a short-lived access token in memory and nothing else, so no
// script injected into it finds a refresh token in localStorage, sessionStorage or cookies.
import { SiwaError } from './errors.js';
import type { components } from './generated/api.js';
import { Http, type HttpOptions } from './http.js';
import { isDue, Listeners, nowSeconds, type SignInListener, type User } from './session.js';

type WebToken = components['schemas']['WebTokenResponse'];

export interface SiwaWebClientOptions extends HttpOptions {
  /** Refresh the in-memory access token this many seconds before it expires at most (60). */
  refreshMarginSeconds?: number;
}

export interface SignInOptions {
  /**
   * `popup` (the default) keeps the app's page and state; `redirect` sends the whole page to
   * Apple and back to `returnTo`.
   */
  mode?: 'popup' | 'redirect';
  /** Where the page comes back to (redirect) or whose origin the popup tells: this page by default. */
  returnTo?: string;
  /** When the browser blocks the popup: go on as a redirect (the default), or fail with `popup_blocked`. */
  onPopupBlocked?: 'redirect' | 'fail';
  /**
   * How long a popup whose opener was cut (see below) is waited for (2 minutes); a popup that
   * reports is never cut short.
   */
  popupTimeoutMs?: number;
  /** Cancels the wait for the popup (`cancelled`). */
  signal?: AbortSignal;
}

/** The header that tells the server a request is the app's own script's (`X-Siwa-Request`). */
const WEB_APP_HEADER = { 'x-siwa-request': '1' };

export class SiwaWebClient {
  private readonly http: Http;
  private readonly margin: number;
  private readonly listeners = new Listeners();
  private token: { value: string; expiresAt: number; lifetime: number } | null = null;
  private fetching: Promise<string> | null = null;
  private lastUser: string | null | undefined = undefined;

  constructor(options: SiwaWebClientOptions) {
    // https, unless the app's page is itself plain http (development): then the server
    // is no weaker than the page.
    this.http = new Http(options, { allowPlainHttp: location.protocol === 'http:' });
    this.margin = options.refreshMarginSeconds ?? 60;
  }

  /** Calls `listener` with the user each time the sign-in state changes; returns the remover. */
  onChange(listener: SignInListener): () => void {
    return this.listeners.add(listener);
  }

  /**
   * Signs in with Apple through the server's web flow. A popup resolves with the user; a
   * redirect leaves the page (the promise never settles) and the page at `returnTo` then
   * finds the user with `currentUser()`, or the failure with `redirectError()`.
   */
  async signIn(options: SignInOptions = {}): Promise<User> {
    const returnTo = options.returnTo ?? location.href;
    const mode = options.mode ?? 'popup';
    if (mode === 'popup') {
      const url = this.startUrl(returnTo, 'popup');
      const popup = window.open(url, 'siwa-sign-in', 'popup,width=520,height=720');
      if (popup) return this.waitFor(popup, options);
      if (options.onPopupBlocked === 'fail') {
        throw new SiwaError('popup_blocked', 'the browser blocked the sign-in window');
      }
    }
    location.assign(this.startUrl(returnTo, 'redirect'));
    return new Promise<User>(() => {});
  }

  /**
   * The error a redirect sign-in came back with (`?siwa_error=`), taken off the address bar;
   * null when there is none.
   */
  redirectError(): SiwaError | null {
    const url = new URL(location.href);
    const code = url.searchParams.get('siwa_error');
    if (!code) return null;
    url.searchParams.delete('siwa_error');
    history.replaceState(history.state, '', url);
    return code === 'user_cancelled_authorize'
      ? new SiwaError('cancelled', 'the user cancelled the sign-in')
      : new SiwaError(code, `the sign-in failed (${code})`);
  }

  /** The signed-in user (`GET /v1/web/session`), or null when no one is. */
  async currentUser(): Promise<User | null> {
    try {
      return this.seen(await this.http.send<User>('v1/web/session', { withCookies: true }));
    } catch (error) {
      if (error instanceof SiwaError && error.code === 'not_signed_in') return this.seen(null);
      throw error;
    }
  }

  /**
   * A short-lived access token for the app's API (`POST /v1/web/token`), kept in memory only
   * and fetched again before it expires; concurrent callers share one request.
   */
  async accessToken(): Promise<string> {
    const token = this.token;
    if (token && !isDue(nowSeconds(), token.expiresAt, token.lifetime, this.margin)) return token.value;
    if (!this.fetching) {
      this.fetching = this.http
        .send<WebToken>('v1/web/token', { method: 'POST', withCookies: true, headers: WEB_APP_HEADER })
        .then((answer) => {
          this.token = { value: answer.accessToken, expiresAt: nowSeconds() + answer.expiresIn, lifetime: answer.expiresIn };
          return answer.accessToken;
        })
        .catch((error) => {
          if (error instanceof SiwaError && error.meaning === 'sign_in_again') {
            this.forget();
            throw new SiwaError('session_expired', 'the session has ended; sign in again', error.status);
          }
          throw error;
        })
        .finally(() => (this.fetching = null));
    }
    return this.fetching;
  }

  /** Ends the session at the server and removes its cookie. */
  async signOut(): Promise<void> {
    await this.http.send('v1/web/session', { method: 'DELETE', withCookies: true, headers: WEB_APP_HEADER });
    this.forget();
  }

  /** Deletes the account (the server revokes it at Apple), then ends the browser's session. */
  async deleteAccount(): Promise<void> {
    const accessToken = await this.accessToken();
    await this.http.send('v1/me', { method: 'DELETE', accessToken });
    await this.signOut().catch(() => this.forget());
  }

  private startUrl(returnTo: string, mode: 'popup' | 'redirect'): string {
    return this.http.url('v1/web/sign-in?' + new URLSearchParams({ return_to: returnTo, mode }));
  }

  /**
   * The popup's outcome. Its last page posts it to this page's origin (checked here: the
   * server's origin, the popup's window) and closes. Where the opener was cut (this page's
   * own `Cross-Origin-Opener-Policy`, or Apple's, or an in-app browser), the window looks
   * closed from here at once: the server is asked instead, once a second, until someone is
   * signed in, the wait times out, or the app cancels it.
   */
  private waitFor(popup: Window, options: SignInOptions): Promise<User> {
    const serverOrigin = this.http.base.origin;
    return new Promise<User>((resolve, reject) => {
      let done = false;
      const finish = (outcome: User | SiwaError) => {
        if (done) return;
        done = true;
        window.removeEventListener('message', onMessage);
        clearInterval(poll);
        clearTimeout(deadline);
        options.signal?.removeEventListener('abort', onAbort);
        if (outcome instanceof SiwaError) reject(outcome);
        else resolve(outcome);
      };
      const askServer = async (orElse?: SiwaError) => {
        try {
          const user = await this.currentUser();
          if (user) finish(user);
          else if (orElse) finish(orElse);
        } catch (error) {
          if (orElse) finish(error instanceof SiwaError ? error : orElse);
        }
      };
      const onMessage = (event: MessageEvent) => {
        const data = event.data;
        if (event.origin !== serverOrigin || event.source !== popup || data?.type !== 'siwa:sign-in') return;
        if (data.outcome === 'signed-in') {
          void askServer(new SiwaError('not_signed_in', 'the sign-in did not reach this page'));
        } else {
          const code = String(data.error || 'unexpected_response');
          finish(code === 'user_cancelled_authorize'
            ? new SiwaError('cancelled', 'the user cancelled the sign-in')
            : new SiwaError(code, `the sign-in failed (${code})`));
        }
      };
      const onAbort = () => {
        if (!popup.closed) popup.close();
        finish(new SiwaError('cancelled', 'the sign-in was cancelled'));
      };
      window.addEventListener('message', onMessage);
      options.signal?.addEventListener('abort', onAbort);
      const poll = setInterval(() => {
        if (popup.closed) void askServer();
      }, 1000);
      const deadline = setTimeout(
        () => void askServer(new SiwaError('popup_closed', 'the sign-in window closed before the sign-in completed')),
        options.popupTimeoutMs ?? 120_000,
      );
    });
  }

  /** The user now known, told to the listeners when it changed. */
  private seen(user: User | null): User | null {
    const id = user?.id ?? null;
    if (id !== this.lastUser) {
      this.lastUser = id;
      this.listeners.emit(user);
    }
    if (!user) this.token = null;
    return user;
  }

  private forget(): void {
    this.token = null;
    this.seen(null);
  }
}
