// Prebundles every lambda/<name>/index.ts into dist/handlers/<name>/index.js.
//
// The constructs load these folders with `lambda.Code.fromAsset`, so a consumer's
// `cdk synth` never needs esbuild or Docker. The output is deterministic (no
// timestamps, no absolute paths, no source maps), so asset hashes are stable
// across machines and checkout paths.
import { build } from 'esbuild';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'lambda');
const outRoot = join(root, 'dist', 'handlers');

const all = readdirSync(srcDir, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(srcDir, d.name, 'index.ts')))
  .map((d) => d.name)
  .sort();
// `node scripts/bundle-handlers.mjs name...` bundles only the named handlers.
const only = process.argv.slice(2);
for (const name of only) {
  if (!all.includes(name)) throw new Error(`no handler lambda/${name}/index.ts (have: ${all.join(', ')})`);
}
const names = only.length > 0 ? only : all;

if (only.length === 0 && existsSync(outRoot)) {
  // drop bundles whose source is gone
  for (const d of readdirSync(outRoot)) if (!all.includes(d)) rmSync(join(outRoot, d), { recursive: true, force: true });
}

const requireFromRoot = createRequire(join(root, 'package.json'));

// A package listed under "lazy" in lambda/<name>/bundle.json is loaded on its first use, not when the handler
// module loads: the handler's own imports of it resolve to a small generated module whose exports load the
// package when they are first constructed, called or read (a Proxy each). Cold starts that never use it
// (isComplete, Delete) do not pay for it. Names are the package's exports, read here at build time.
function lazyPackages(lazy) {
  return {
    name: 'lazy-packages',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (!lazy.has(args.path) || args.namespace === 'lazy' || args.importer.includes('/node_modules/')) return undefined;
        return { path: args.path, namespace: 'lazy' };
      });
      b.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => {
        const names = Object.keys(requireFromRoot(args.path)).filter((k) => k !== 'default' && k !== '__esModule' && /^[A-Za-z_$][\w$]*$/.test(k)).sort();
        const pkg = JSON.stringify(args.path);
        const contents = [
          'let loaded;',
          // a marker for tests: which lazy packages this process has loaded
          `const load = () => loaded ?? (loaded = require(${pkg}), (globalThis[Symbol.for('cdk-rollback.lazy-loaded')] ??= new Set()).add(${pkg}), loaded);`,
          'const lazy = (name) => new Proxy(function () {}, {',
          '  construct: (_t, args) => Reflect.construct(load()[name], args),',
          '  apply: (_t, self, args) => Reflect.apply(load()[name], self, args),',
          '  get: (_t, key) => load()[name][key],',
          '  has: (_t, key) => key in load()[name],',
          '});',
          ...names.map((n) => `export const ${n} = lazy(${JSON.stringify(n)});`),
        ].join('\n');
        return { contents, loader: 'js', resolveDir: root };
      });
    },
  };
}

for (const name of names) {
  // A handler may list packages to bundle although the Lambda runtime ships them
  // (for example a newer AWS SDK client than the runtime's) in lambda/<name>/bundle.json:
  // { "bundle": ["@aws-sdk/client-cloudfront-keyvaluestore"] }.
  const cfgFile = join(srcDir, name, 'bundle.json');
  const cfg = existsSync(cfgFile) ? JSON.parse(readFileSync(cfgFile, 'utf8')) : {};
  const bundled = new Set(cfg.bundle ?? []);
  const lazy = new Set(cfg.lazy ?? []);
  rmSync(join(outRoot, name), { recursive: true, force: true });
  await build({
    entryPoints: [join(srcDir, name, 'index.ts')],
    outfile: join(outRoot, name, 'index.js'),
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    minify: true,
    legalComments: 'none',
    sourcemap: false,
    logLevel: 'warning',
    absWorkingDir: root,
    // "mainFields": ["module", "main"] in bundle.json bundles packages from their ES module builds: the AWS SDK's
    // tree-shake and load faster than its CommonJS builds (site-release: bench/RESULTS.md, cold start).
    ...(cfg.mainFields ? { mainFields: cfg.mainFields } : {}),
    // The output is CommonJS: what the bundled code loads with import() (node:http in the SDK's ES build) is
    // loaded with require(), so the handler also runs where import() is not available (a vm context, as in jest).
    supported: { 'dynamic-import': false },
    plugins: [lazyPackages(lazy), {
      // The Node.js 22 Lambda runtime ships AWS SDK v3: keep it external unless the handler asks otherwise.
      name: 'aws-sdk-external',
      setup(b) {
        b.onResolve({ filter: /^@aws-sdk\// }, (args) => {
          // What a bundled package imports is bundled with it, so one handler never mixes SDK versions.
          if (args.importer.includes('/node_modules/')) return undefined;
          const pkg = args.path.split('/').slice(0, 2).join('/');
          return bundled.has(pkg) ? undefined : { path: args.path, external: true };
        });
      },
    }],
  });
}
console.error(`bundled ${names.length} handler(s) into dist/handlers: ${names.join(', ') || '(none)'}`);
