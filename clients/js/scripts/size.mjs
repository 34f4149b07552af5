// The size budget: the package's entry point bundled and minified with
// esbuild, then gzipped, must stay under LIMIT bytes. Exits 1 above it.
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';

const LIMIT = 5 * 1024;
const result = await build({
  entryPoints: [new URL('../dist/index.js', import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: 'esm',
  write: false,
  logLevel: 'silent',
});
const code = result.outputFiles[0].contents;
const gzipped = gzipSync(code, { level: 9 }).length;
console.log(`size: ${code.length} bytes minified, ${gzipped} bytes gzipped (limit ${LIMIT})`);
if (gzipped > LIMIT) {
  console.error(`size: over the budget by ${gzipped - LIMIT} bytes`);
  process.exit(1);
}
