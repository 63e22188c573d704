/**
 * A consumer's `cdk synth` must not need esbuild or Docker: the handlers ship prebundled
 * (dist/handlers, built by `npm run build`) and are plain assets. This synthesizes the built
 * library in a child process that cannot load esbuild and has no docker on its PATH.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { consumerApp } from './helpers/consumer-app';

const root = path.join(__dirname, '..');

test('synthesizing every construct loads no bundler and runs no docker', () => {
  const built = path.join(root, 'dist', 'lib', 'index.js');
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` first (npm test does)`);
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'no-bundling-'));
  const script = consumerApp(built, outdir, `
    const assembly = app.synth();
    const assets = Object.values(JSON.parse(require('fs').readFileSync(assembly.directory + '/Consumer.assets.json', 'utf8')).files);
    console.log(JSON.stringify(assets.filter((a) => !a.source.path.endsWith('.template.json')).map((a) => a.source.packaging)));
  `);
  const res = spawnSync(process.execPath, ['-r', path.join(__dirname, 'fixtures', 'block-bundlers.js'), '-e', script], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, PATH: path.dirname(process.execPath), CDK_DOCKER: '/nonexistent/docker' },
  });
  expect(res.stderr).not.toMatch(/synth tried to load/);
  expect(res.status).toBe(0);
  const packagings: string[] = JSON.parse(res.stdout.trim().split('\n').pop()!);
  expect(packagings.length).toBeGreaterThan(0);
  // zipped folders of prebundled handlers, nothing built at synth
  expect(new Set(packagings)).toEqual(new Set(["zip"]));
});

test('the published package synthesizes byte-identical templates from any checkout path', () => {
  const synthFrom = (dir: string) => {
    // exactly what the published package holds (package.json "files"), in another folder
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { files: string[] };
    for (const entry of [...pkg.files, 'package.json']) {
      fs.mkdirSync(path.dirname(path.join(dir, entry)), { recursive: true });
      fs.cpSync(path.join(root, entry), path.join(dir, entry), { recursive: true });
    }
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
    const script = consumerApp('./dist/lib', 'cdk.out', `
      new lib.VersionedSite(stack, 'Site', { source: ${JSON.stringify(path.join(root, 'test', 'fixtures', 'site', 'build'))} });
      app.synth();
    `);
    const res = spawnSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8' });
    expect(res.stderr).not.toMatch(/Error/);
    expect(res.status).toBe(0);
    return fs.readFileSync(path.join(dir, 'cdk.out', 'Consumer.template.json'), 'utf8');
  };
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'checkout-'));
  const a = synthFrom(path.join(base, 'one'));
  const b = synthFrom(path.join(base, 'some', 'other', 'path'));
  expect(b).toBe(a);
  expect(a).not.toContain(base);
  fs.rmSync(base, { recursive: true, force: true });
});
