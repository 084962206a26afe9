// siwa-kit: Sign in with Apple against siwa-server, for web apps (browser mode: the session is
// the server's cookie) and React Native, Electron and Node (token mode: the app keeps it).
export { SiwaWebClient, type SiwaWebClientOptions, type SignInOptions } from './browser.js';
export {
  SiwaClient,
  InMemorySessionStore,
  type SessionStore,
  type SiwaClientOptions,
  type SignInAttempt,
  type AppleCredential,
} from './token.js';
export { SiwaError, meaningOf, type ErrorMeaning, type ServerErrorCode, type ClientErrorCode } from './errors.js';
export type { User, SignInListener } from './session.js';
export type { Sha256, CryptoHooks } from './crypto.js';
export type { components as Api } from './generated/api.js';
