// The client's one error type. Every code the server answers, and what to do about it, comes
// from siwa_core::api through the server's OpenAPI document (src/generated/api.ts): nothing
// here spells a server code's meaning again.
import {
  refreshSessionCodeValues,
  retryLaterCodeValues,
  signInAgainCodeValues,
  type components,
} from './generated/api.js';

/** Every error code siwa-server answers with. */
export type ServerErrorCode = components['schemas']['ErrorCode'];

/** What the client itself refuses or meets, beside the server's codes. */
export type ClientErrorCode =
  | 'network' // the server could not be reached (or took longer than the timeout)
  | 'unexpected_response' // an answer the client does not understand, a redirect included
  | 'session_expired' // the session ended at the server: sign in again
  | 'unknown_attempt' // a sign-in attempt this client did not start, or already finished
  | 'user_mismatch' // the identity token is another user's than the credential's
  | 'invalid_identity_token' // the identity token cannot be read
  | 'invalid_server_url' // not an absolute http(s) URL
  | 'insecure_server_url' // plain http off a loopback address
  | 'invalid_redirect_uri'
  | 'storage' // the session store failed
  | 'popup_blocked' // the browser refused to open the sign-in's window
  | 'popup_closed' // the window was closed before the sign-in completed
  | 'cancelled'; // the user or the app cancelled

/** What the caller does about an error (siwa_core's `ErrorMeaning`). */
export type ErrorMeaning = 'fix_request' | 'refresh_session' | 'sign_in_again' | 'retry_later';

const has = (list: readonly string[], code: string) => list.includes(code);

/** The meaning of `code`, as siwa_core::api gives it; a 5xx or a network failure is "later". */
export function meaningOf(code: string, status?: number): ErrorMeaning {
  if (has(retryLaterCodeValues, code) || code === 'network' || (status ?? 0) >= 500) return 'retry_later';
  if (has(refreshSessionCodeValues, code)) return 'refresh_session';
  if (has(signInAgainCodeValues, code) || code === 'session_expired') return 'sign_in_again';
  return 'fix_request';
}

/**
 * An error of the client or of the server. Its message is the server's fixed text or the
 * client's own: never a token, a nonce or an email.
 */
export class SiwaError extends Error {
  /** A server code (`token_replayed`, `apple_unavailable`...) or a client one (`network`...). */
  readonly code: ServerErrorCode | ClientErrorCode | (string & {});
  /** The HTTP status of a server's answer. */
  readonly status?: number;
  readonly meaning: ErrorMeaning;

  constructor(code: string, message?: string, status?: number) {
    super(message || code);
    this.name = 'SiwaError';
    this.code = code;
    this.status = status;
    this.meaning = meaningOf(code, status);
  }

  /** Whether sending again later may succeed (Apple, the database or the server is down). */
  get retryLater(): boolean {
    return this.meaning === 'retry_later';
  }
}
