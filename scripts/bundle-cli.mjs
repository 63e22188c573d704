// Prebundles the cdk-rollback CLI (bin/cdk-rollback.ts) with its libraries (AWS SDK clients, commander, pg,
// the prompt) into dist/bin, so the published package needs no runtime dependency for it.
//
// - dist/cli/cdk-rollback.mjs: the entry, an ES module bundle; each subcommand module (status, api, site, db,
//   migrate) is a lazily imported chunk under dist/cli/chunks, so `--help` parses the entry only and a
//   subcommand loads only the AWS clients it uses. A single-file CommonJS bundle parses every client up front:
//   when choosing, on 2026-11-23, `--help` took 0.24-0.29 s with it against 0.12-0.13 s with this split (a few
//   runs each on a loaded machine); bench/cli.ts measures the shipped bundle against the unbundled CLI.
// - dist/bin/cdk-rollback.js: the `bin` of package.json, a CommonJS shim that imports the entry (it replaces
//   tsc's unbundled entry; tsc's dist/bin/cli/*.js stay for the benchmark's before/after comparison only).
//
// The output is deterministic: content-hashed chunk names, no timestamps, no absolute paths, no source maps.
import { build } from 'esbuild';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binDir = join(root, 'dist', 'bin');
const outDir = join(root, 'dist', 'cli');
rmSync(outDir, { recursive: true, force: true });
mkdirSync(binDir, { recursive: true });

await build({
  entryPoints: { 'cdk-rollback': join(root, 'bin', 'cdk-rollback.ts') },
  outdir: outDir,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // ES module builds of the SDK tree-shake better than its CommonJS builds.
  mainFields: ['module', 'main'],
  minify: true,
  legalComments: 'none',
  sourcemap: false,
  logLevel: 'warning',
  absWorkingDir: root,
  // pg's optional native binding is never used.
  external: ['pg-native'],
  define: { 'process.env.CDK_ROLLBACK_BUNDLED': '"true"' },
  // CommonJS modules inside the bundle (pg, parts of the SDK) call require() for Node built-ins.
  banner: { js: "import{createRequire as __cdkRollbackRequire}from'node:module';const require=__cdkRollbackRequire(import.meta.url);" },
});

writeFileSync(join(binDir, 'cdk-rollback.js'), [
  '#!/usr/bin/env node',
  "'use strict';",
  '// The cdk-rollback CLI: a shim that loads the prebundled ES module entry (scripts/bundle-cli.mjs).',
  "import('../cli/cdk-rollback.mjs').catch((err) => { process.stderr.write(`cdk-rollback: error: ${err && err.message ? err.message : String(err)}\\n`); process.exitCode = 1; });",
  '',
].join('\n'), { mode: 0o755 });
console.error('bundled the CLI into dist/cli (entry dist/bin/cdk-rollback.js)');
