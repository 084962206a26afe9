// The server's API over fetch: JSON in and out, a timeout, no redirects followed (an answer
// from elsewhere is not the server's), and every refusal a SiwaError with the server's code.
import { SiwaError } from './errors.js';

export interface HttpOptions {
  serverUrl: string;
  /** The platform's fetch, or a stand-in (tests, a proxy). */
  fetch?: typeof fetch;
  /** Per request; 15 s as the Rust core's. */
  timeoutMs?: number;
}

interface Policy {
  /** Plain http to any host (a page served over plain http is no safer than its server). */
  allowPlainHttp?: boolean;
}

export interface Request {
  method?: string;
  body?: unknown;
  accessToken?: string;
  /** Send the browser's cookies for the server (browser mode). */
  withCookies?: boolean;
  headers?: Record<string, string>;
}

const isLoopback = (host: string) =>
  host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);

/** The server's base URL, checked: https, or http on a loopback address. */
export function serverBase(serverUrl: string, policy: Policy = {}): URL {
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch {
    throw new SiwaError('invalid_server_url', 'the server URL is not an absolute http(s) URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new SiwaError('invalid_server_url', 'the server URL is not an absolute http(s) URL');
  }
  if (url.protocol === 'http:' && !isLoopback(url.hostname) && !policy.allowPlainHttp) {
    throw new SiwaError('insecure_server_url', 'the server URL must be https (plain http is for loopback addresses only)');
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

export class Http {
  readonly base: URL;
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;

  constructor(options: HttpOptions, policy: Policy = {}) {
    this.base = serverBase(options.serverUrl, policy);
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  url(route: string): string {
    return new URL(route.replace(/^\//, ''), this.base).toString();
  }

  /** The answer's JSON (undefined for a 204), or a SiwaError. */
  async send<T>(route: string, request: Request = {}): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json', ...request.headers };
    if (request.body !== undefined) headers['content-type'] = 'application/json';
    if (request.accessToken) headers.authorization = `Bearer ${request.accessToken}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    let response: Response;
    try {
      response = await this.fetch(this.url(route), {
        method: request.method ?? 'GET',
        headers,
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
        credentials: request.withCookies ? 'include' : 'omit',
        redirect: 'manual',
        signal: controller.signal,
      });
    } catch {
      throw new SiwaError('network', 'the server could not be reached');
    } finally {
      clearTimeout(timer);
    }
    if (response.status === 204) return undefined as T;
    const body = await response.json().catch(() => undefined);
    if (response.ok && body !== undefined) return body as T;
    if (body && typeof body.error === 'string') {
      throw new SiwaError(body.error, typeof body.message === 'string' ? body.message : body.error, response.status);
    }
    throw new SiwaError('unexpected_response', `the server's answer was not understood (HTTP ${response.status})`, response.status);
  }
}
