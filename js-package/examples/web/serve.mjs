// Serves the example single-page app and siwa-kit's build (js-package/dist) on one origin:
//
//   node examples/web/serve.mjs [--port 5173] [--host 127.0.0.1] [--server http://127.0.0.1:8080]
//
// The server must list this origin in SIWA_WEB_ORIGINS (`siwa-server dev` lists
// http://127.0.0.1:5173) and be on the same site. `handler` is the tests' too.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const dist = fileURLToPath(new URL('../../dist/', import.meta.url));
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json' };

/** A request handler for the app; `headers` are added to its pages' answers. */
export function handler({ serverUrl, headers = {} }) {
  return async (request, response) => {
    const path = new URL(request.url, 'http://x').pathname;
    if (path === '/config.json') {
      response.writeHead(200, { 'content-type': TYPES['.json'] }).end(JSON.stringify({ serverUrl }));
      return;
    }
    const [root, file] = path.startsWith('/siwa-kit/')
      ? [dist, path.slice('/siwa-kit/'.length)]
      : [here, extname(path) ? path.slice(1) : 'index.html'];
    const resolved = normalize(join(root, file));
    if (!resolved.startsWith(root) || resolved.endsWith('.mjs')) {
      response.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(resolved);
      response.writeHead(200, { 'content-type': TYPES[extname(resolved)] ?? 'application/octet-stream', ...headers }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const port = Number(arg('port', 5173));
  const host = arg('host', '127.0.0.1');
  const serverUrl = arg('server', 'http://127.0.0.1:8080');
  createServer(handler({ serverUrl })).listen(port, host, () => {
    console.log(`example app: http://${host}:${port}  (siwa-server: ${serverUrl})`);
  });
}
