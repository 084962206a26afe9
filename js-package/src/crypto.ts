// Nonces and PKCE: random values from the platform and SHA-256 from WebCrypto, or from the
// functions the app passes where WebCrypto is missing (React Native: expo-crypto, say).

/** SHA-256 of bytes. */
export type Sha256 = (data: Uint8Array) => Promise<Uint8Array>;

export interface CryptoHooks {
  /** SHA-256, where `crypto.subtle` is missing. */
  sha256?: Sha256;
  /** Random bytes, where `crypto.getRandomValues` is missing. */
  randomBytes?: (length: number) => Uint8Array;
}

export function randomBytes(length: number, hooks: CryptoHooks): Uint8Array {
  if (hooks.randomBytes) return hooks.randomBytes(length);
  if (!globalThis.crypto?.getRandomValues) {
    throw new Error('no crypto.getRandomValues here: pass randomBytes');
  }
  return globalThis.crypto.getRandomValues(new Uint8Array(length));
}

export async function sha256(text: string, hooks: CryptoHooks): Promise<Uint8Array> {
  const data = new TextEncoder().encode(text);
  if (hooks.sha256) return hooks.sha256(data);
  if (!globalThis.crypto?.subtle) throw new Error('no crypto.subtle here: pass sha256');
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', data));
}

export const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

export function base64url(bytes: Uint8Array): string {
  let binary = '';
  bytes.forEach((b) => (binary += String.fromCharCode(b)));
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A JWT's payload, unverified (the server verifies): only to compare claims the app holds. */
export function unverifiedClaims(jwt: string): Record<string, unknown> | null {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const text = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
    const claims = JSON.parse(text);
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}
