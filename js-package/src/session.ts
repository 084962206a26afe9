// What both modes share: the user as the API shows them, sign-in state listeners, and the
// rule for when an access token is due for a refresh.
import type { components } from './generated/api.js';

/** A user as the API shows them (`GET /v1/me`, `GET /v1/web/session`). */
export type User = components['schemas']['UserView'];

export type SignInListener = (user: User | null) => void;

/** The listeners of a client's sign-in state. */
export class Listeners {
  private readonly listeners = new Set<SignInListener>();

  /** Adds `listener`; returns the function that removes it. */
  add(listener: SignInListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(user: User | null): void {
    for (const listener of this.listeners) {
      try {
        listener(user);
      } catch {
        // A listener's failure is the app's, not the sign-in's.
      }
    }
  }
}

/**
 * Whether a token expiring at `expiresAt` (seconds) is due: within `maxMargin` seconds, or a
 * quarter of its lifetime when that is shorter (a margin as long as the lifetime would refresh
 * a token the moment it arrives), as the Rust core's.
 */
export function isDue(now: number, expiresAt: number, lifetime: number, maxMargin: number): boolean {
  const margin = lifetime > 0 ? Math.min(maxMargin, lifetime / 4) : maxMargin;
  return now + margin >= expiresAt;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);
