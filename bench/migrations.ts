/**
 * Migrations benchmark: the cdk-rollback runner side by side with node-pg-migrate, on the same embedded PostgreSQL.
 *
 * 1. apply 500 small SQL migrations to an empty database (target: our time / node-pg-migrate's time <= 1.0);
 * 2. the no-op check with those 500 applied (target: <= 100 ms).
 * Each tool gets its own fresh database; node-pg-migrate runs with its defaults (SQL files, its own lock and table).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { migrate } from '../lambda/database-migrations/runner';
import { startPostgres } from '../test/fixtures/db/server';

const COUNT = 500;
const NOOP_RUNS = 5;

function writeMigrations(dir: string): void {
  for (let i = 1; i <= COUNT; i++) {
    const v = String(i).padStart(4, '0');
    fs.writeFileSync(path.join(dir, `${v}_step_${v}.sql`),
      `-- Up Migration\nCREATE TABLE t_${v} (id integer PRIMARY KEY, note text NOT NULL DEFAULT '');\nINSERT INTO t_${v} (id) VALUES (${i});\n`);
  }
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// node-pg-migrate 9 is ESM-only: load it with a real dynamic import (not transpiled to require).
const importEsm = new Function('s', 'return import(s)') as (s: string) => Promise<{ runner: (o: object) => Promise<unknown[]> }>;

export async function run(): Promise<string> {
  const pg = await startPostgres();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-migrations-'));
  try {
    writeMigrations(dir);
    const { runner } = await importEsm('node-pg-migrate');

    // cdk-rollback runner
    const oursUrl = await pg.freshDatabase();
    let applied = 0;
    const oursApply = await time(async () => { applied = (await migrate({ connectionString: oursUrl }, { dir })).applied.length; });
    if (applied !== COUNT) throw new Error(`cdk-rollback applied ${applied}, expected ${COUNT}`);
    const oursNoop: number[] = [];
    for (let i = 0; i < NOOP_RUNS; i++) {
      oursNoop.push(await time(async () => {
        const r = await migrate({ connectionString: oursUrl }, { dir });
        if (r.applied.length !== 0) throw new Error('no-op run applied something');
      }));
    }

    // node-pg-migrate
    const theirsUrl = await pg.freshDatabase();
    const opts = { databaseUrl: theirsUrl, dir, direction: 'up', migrationsTable: 'pgmigrations', count: Infinity, log: () => undefined };
    let theirsApplied = 0;
    const theirsApply = await time(async () => { theirsApplied = (await runner(opts)).length; });
    if (theirsApplied !== COUNT) throw new Error(`node-pg-migrate applied ${theirsApplied}, expected ${COUNT}`);
    const theirsNoop: number[] = [];
    for (let i = 0; i < NOOP_RUNS; i++) theirsNoop.push(await time(() => runner(opts)));

    const ratio = oursApply / theirsApply;
    const noop = median(oursNoop);
    const f = (ms: number) => `${ms.toFixed(0)} ms`;
    return [
      '## Database migrations: cdk-rollback runner vs node-pg-migrate',
      '',
      `Same embedded PostgreSQL (${COUNT} migrations, each \`CREATE TABLE\` + \`INSERT\`), a fresh database per tool.`,
      'cdk-rollback: one transaction per migration (sent as one query with its history row), sha256 checksums, advisory lock.',
      'node-pg-migrate 9: its defaults (SQL files, one transaction for the whole run, advisory lock).',
      '',
      '| measure | cdk-rollback | node-pg-migrate | target |',
      '|---|---|---|---|',
      `| apply ${COUNT} migrations | ${f(oursApply)} | ${f(theirsApply)} | ratio ${ratio.toFixed(2)} (target <= 1.0: ${ratio <= 1 ? 'met' : 'NOT met'}) |`,
      `| no-op check, ${COUNT} applied (median of ${NOOP_RUNS}) | ${f(noop)} | ${f(median(theirsNoop))} | <= 100 ms: ${noop <= 100 ? 'met' : 'NOT met'} |`,
      '',
    ].join('\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await pg.stop();
  }
}
