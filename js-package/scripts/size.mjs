// The browser build's size, minified and gzipped: what a single-page app pays for siwa-kit's
// browser mode (`siwa-kit/browser`). Fails over the budget (8 KB).
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';

const BUDGET = 8 * 1024;
const result = await build({
  entryPoints: [new URL('../src/browser.ts', import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  write: false,
});
const code = result.outputFiles[0].contents;
const gzipped = gzipSync(code, { level: 9 }).length;
console.log(`size: siwa-kit/browser is ${code.length} bytes minified, ${gzipped} bytes gzipped (budget ${BUDGET})`);
if (gzipped >= BUDGET) process.exit(1);
