// Token mode, for React Native, Electron, Node and tests: the app holds the session (in a
// SessionStore it chooses: the platform's secure storage) and behaves as the Rust core's
// client (core/src/client): the same routes, refresh rules, retry rules and errors.
import { base64url, type CryptoHooks, hex, randomBytes, sha256, unverifiedClaims } from './crypto.js';
import { SiwaError } from './errors.js';
import type { components } from './generated/api.js';
import { Http, type HttpOptions } from './http.js';
import { isDue, Listeners, nowSeconds, type SignInListener, type User } from './session.js';

type Schemas = components['schemas'];

/** Where a session is kept between launches: async get/set/delete of one string. */
export interface SessionStore {
  get(): Promise<string | null>;
  set(value: string): Promise<void>;
  delete(): Promise<void>;
}

/** A store that forgets the session with the process (tests, or an app that wants that). */
export class InMemorySessionStore implements SessionStore {
  private value: string | null = null;
  async get() {
    return this.value;
  }
  async set(value: string) {
    this.value = value;
  }
  async delete() {
    this.value = null;
  }
}

/** A sign-in's nonce: `hashedNonce` goes to Apple, `rawNonce` to the server with the token. */
export interface SignInAttempt {
  rawNonce: string;
  hashedNonce: string;
}

/** What Apple gave the app (as expo-apple-authentication's `signInAsync` returns it). */
export interface AppleCredential {
  identityToken: string;
  authorizationCode?: string | null;
  rawNonce: string;
  /** Apple's user id, when the platform gives it: checked against the token's `sub`. */
  user?: string | null;
  /** Given on the first authorization only. */
  fullName?: { givenName?: string | null; familyName?: string | null } | null;
}

export interface SiwaClientOptions extends HttpOptions, CryptoHooks {
  /** Where the session is kept; in memory when absent. */
  store?: SessionStore;
  /** Refresh an access token this many seconds before it expires at most (60). */
  refreshMarginSeconds?: number;
}

/** The session as stored. */
interface Session {
  user: User;
  accessToken: string;
  refreshToken: string;
  /** Seconds since the epoch. */
  accessTokenExpiresAt: number;
  accessTokenLifetime: number;
}

interface BrowserAttempt {
  appRedirectUri: string;
  verifier: string;
}

const MAX_PENDING_ATTEMPTS = 8;

export class SiwaClient {
  private readonly http: Http;
  private readonly store: SessionStore;
  private readonly hooks: CryptoHooks;
  private readonly margin: number;
  private readonly listeners = new Listeners();
  private session: Session | null = null;
  private refreshing: Promise<Session> | null = null;
  private attempts: string[] = [];
  private browserAttempt: BrowserAttempt | null = null;

  private constructor(options: SiwaClientOptions) {
    this.http = new Http(options);
    this.store = options.store ?? new InMemorySessionStore();
    this.hooks = options;
    this.margin = options.refreshMarginSeconds ?? 60;
  }

  /** A client with the session its store kept, if any (one that cannot be read is dropped). */
  static async create(options: SiwaClientOptions): Promise<SiwaClient> {
    const client = new SiwaClient(options);
    const stored = await client.storage(() => client.store.get());
    if (stored) {
      const session = readSession(stored);
      if (session) client.session = session;
      else await client.storage(() => client.store.delete());
    }
    return client;
  }

  /** Calls `listener` with the user each time someone signs in or out; returns the remover. */
  onChange(listener: SignInListener): () => void {
    return this.listeners.add(listener);
  }

  /** The signed-in user, as last seen; null when no one is. */
  currentUser(): User | null {
    return this.session?.user ?? null;
  }

  /** A new attempt: pass `hashedNonce` to Apple (expo: `signInAsync({ nonce })`). */
  async startSignIn(): Promise<SignInAttempt> {
    const rawNonce = base64url(randomBytes(32, this.hooks));
    const hashedNonce = hex(await sha256(rawNonce, this.hooks));
    this.attempts = [...this.attempts, rawNonce].slice(-MAX_PENDING_ATTEMPTS);
    return { rawNonce, hashedNonce };
  }

  /** Sends Apple's credential to the server and keeps the session it starts. */
  async completeSignIn(credential: AppleCredential): Promise<User> {
    const { rawNonce } = credential;
    if (!this.attempts.includes(rawNonce)) {
      throw new SiwaError('unknown_attempt', 'the sign-in attempt is unknown or already completed; start a new one');
    }
    const claims = unverifiedClaims(credential.identityToken);
    if (!claims) throw new SiwaError('invalid_identity_token', 'the identity token cannot be read');
    if (claims.nonce !== hex(await sha256(rawNonce, this.hooks))) {
      throw new SiwaError('nonce_mismatch', 'the identity token was not issued for this sign-in attempt');
    }
    if (credential.user && claims.sub !== credential.user) {
      throw new SiwaError('user_mismatch', 'the identity token belongs to another user than the credential');
    }
    const givenName = credential.fullName?.givenName?.trim() || undefined;
    const familyName = credential.fullName?.familyName?.trim() || undefined;
    const request: Schemas['SignInRequest'] = {
      identityToken: credential.identityToken,
      authorizationCode: credential.authorizationCode ?? undefined,
      rawNonce,
      fullName: givenName || familyName ? { givenName, familyName } : undefined,
    };
    try {
      const answer = await this.http.send<Schemas['SignInResponse']>('v1/auth/apple', { method: 'POST', body: request });
      this.attempts = this.attempts.filter((a) => a !== rawNonce);
      return await this.adopt(answer);
    } catch (error) {
      // A transient failure keeps the attempt, so the same credential can be sent again.
      if (!(error instanceof SiwaError && error.retryLater)) {
        this.attempts = this.attempts.filter((a) => a !== rawNonce);
      }
      throw error;
    }
  }

  /**
   * The URL to open in the system browser for a sign-in through the server's web flow (PKCE,
   * S256), for Android: the server is asked first whether it lists `appRedirectUri`.
   */
  async startBrowserSignIn(appRedirectUri: string): Promise<string> {
    try {
      new URL(appRedirectUri);
    } catch {
      throw new SiwaError('invalid_redirect_uri', 'the app redirect URI is not an absolute URL');
    }
    const verifier = base64url(randomBytes(32, this.hooks));
    const challenge = base64url(await sha256(verifier, this.hooks));
    await this.http.send('v1/web/app-redirect-uri?' + new URLSearchParams({ app_redirect_uri: appRedirectUri }));
    this.browserAttempt = { appRedirectUri, verifier };
    const query = new URLSearchParams({
      app_redirect_uri: appRedirectUri,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    return this.http.url('v1/web/sign-in?' + query);
  }

  /** Finishes a browser sign-in with the URL the browser came back to. */
  async completeBrowserSignIn(callbackUrl: string): Promise<User> {
    const attempt = this.browserAttempt;
    if (!attempt || !callbackUrl.startsWith(attempt.appRedirectUri.split('?')[0])) {
      throw new SiwaError('unknown_attempt', 'the sign-in attempt is unknown or already completed; start a new one');
    }
    const params = new URL(callbackUrl).searchParams;
    const code = params.get('code');
    const error = params.get('error');
    if (!code) {
      this.browserAttempt = null;
      if (error === 'user_cancelled_authorize') throw new SiwaError('cancelled', 'the user cancelled the sign-in');
      throw new SiwaError(error || 'unexpected_response', `the browser sign-in failed (${error})`);
    }
    const request: Schemas['ExchangeRequest'] = { code, codeVerifier: attempt.verifier };
    try {
      const answer = await this.http.send<Schemas['SignInResponse']>('v1/auth/exchange', { method: 'POST', body: request });
      this.browserAttempt = null;
      return await this.adopt(answer);
    } catch (failure) {
      if (!(failure instanceof SiwaError && failure.retryLater)) this.browserAttempt = null;
      throw failure;
    }
  }

  /** A valid access token, refreshed first when it is due; concurrent callers share one refresh. */
  async accessToken(): Promise<string> {
    const session = this.current();
    if (!isDue(nowSeconds(), session.accessTokenExpiresAt, session.accessTokenLifetime, this.margin)) {
      return session.accessToken;
    }
    try {
      return (await this.refresh(session)).accessToken;
    } catch (error) {
      // The server or the network is down: a token that has not expired yet still serves.
      if (error instanceof SiwaError && error.retryLater && nowSeconds() < session.accessTokenExpiresAt) {
        return session.accessToken;
      }
      throw error;
    }
  }

  /** Refreshes the session now (the refresh token rotates). */
  async refreshSession(): Promise<void> {
    await this.refresh(this.current());
  }

  /** The user as the server has them now (`GET /v1/me`), kept. */
  async refreshUser(): Promise<User> {
    const user = await this.authorized((token) => this.http.send<User>('v1/me', { accessToken: token }));
    if (this.session) await this.keep({ ...this.session, user });
    return user;
  }

  /** Ends the session at the server (as far as it can be reached) and here (always). */
  async signOut(): Promise<void> {
    const session = this.session;
    if (!session) return;
    const request: Schemas['LogoutRequest'] = { refreshToken: session.refreshToken };
    await this.http.send('v1/auth/logout', { method: 'POST', body: request }).catch(() => undefined);
    await this.keep(null);
  }

  /** Deletes the account (the server revokes it at Apple, as App Store review asks), then signs out here. */
  async deleteAccount(): Promise<void> {
    await this.authorized((token) => this.http.send('v1/me', { method: 'DELETE', accessToken: token }));
    await this.keep(null);
  }

  private current(): Session {
    if (!this.session) throw new SiwaError('not_signed_in', 'no one is signed in');
    return this.session;
  }

  private refresh(seen: Session): Promise<Session> {
    if (this.session !== seen) return Promise.resolve(this.current());
    if (!this.refreshing) {
      const request: Schemas['RefreshRequest'] = { refreshToken: seen.refreshToken };
      this.refreshing = this.settle(seen, this.http.send<Schemas['SessionView']>('v1/auth/refresh', { method: 'POST', body: request }))
        .then(async (tokens) => {
          const fresh = { ...seen, ...tokensOf(tokens) };
          if (this.session === seen) await this.keep(fresh);
          return this.current();
        })
        .finally(() => (this.refreshing = null));
    }
    return this.refreshing;
  }

  /** `call` with an access token; once more after a refresh if the token was refused. */
  private async authorized<T>(call: (token: string) => Promise<T>): Promise<T> {
    const token = await this.accessToken();
    const session = this.current();
    try {
      return await this.settle(session, call(token));
    } catch (error) {
      if (!(error instanceof SiwaError && error.meaning === 'refresh_session')) throw error;
      const fresh = await this.refresh(session);
      return this.settle(fresh, call(fresh.accessToken));
    }
  }

  /** An answer that ends the session (sign in again) clears it here too: `session_expired`. */
  private async settle<T>(session: Session, answer: Promise<T>): Promise<T> {
    try {
      return await answer;
    } catch (error) {
      if (error instanceof SiwaError && error.meaning === 'sign_in_again') {
        if (this.session === session) await this.keep(null).catch(() => undefined);
        throw new SiwaError('session_expired', 'the session has ended; sign in again', error.status);
      }
      throw error;
    }
  }

  private async adopt(answer: Schemas['SignInResponse']): Promise<User> {
    const session = { user: answer.user, ...tokensOf(answer.session) };
    try {
      await this.keep(session);
    } catch (error) {
      // Not kept, not left behind: the session is ended at the server.
      const request: Schemas['LogoutRequest'] = { refreshToken: session.refreshToken };
      await this.http.send('v1/auth/logout', { method: 'POST', body: request }).catch(() => undefined);
      throw error;
    }
    return session.user;
  }

  /** Stores `session` (or removes it), then adopts it and tells the listeners. */
  private async keep(session: Session | null): Promise<void> {
    const before = this.session?.user.id;
    await this.storage(() => (session ? this.store.set(JSON.stringify(session)) : this.store.delete()));
    this.session = session;
    if (session?.user.id !== before || !session) this.listeners.emit(session?.user ?? null);
  }

  private async storage<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch {
      throw new SiwaError('storage', 'the session store failed');
    }
  }
}

function tokensOf(view: Schemas['SessionView']) {
  return {
    accessToken: view.accessToken,
    refreshToken: view.refreshToken,
    accessTokenExpiresAt: nowSeconds() + view.expiresIn,
    accessTokenLifetime: view.expiresIn,
  };
}

function readSession(stored: string): Session | null {
  try {
    const s = JSON.parse(stored);
    const ok = s && typeof s.accessToken === 'string' && typeof s.refreshToken === 'string'
      && typeof s.accessTokenExpiresAt === 'number' && s.user && typeof s.user.id === 'string';
    return ok ? s : null;
  } catch {
    return null;
  }
}
