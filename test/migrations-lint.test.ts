import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Annotations as CdkAnnotations, App, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { DatabaseMigrations } from '../lib/database-migrations';
import { formatFinding, LINT_RULES, LintFinding, lintMigrations, RuleName, SyntaxProblem } from '../lib/private/migrations-lint';
import { directive, splitStatements } from '../lambda/shared/sql';

// Every case below is one file of one batch: the lint runs the real parser child process once for all of them.
const FLAGGED: Array<[RuleName, string]> = [
  ['drop-table', 'DROP TABLE IF EXISTS users, audit CASCADE;'],
  ['drop-column', 'ALTER TABLE users DROP COLUMN email;'],
  ['drop-schema', 'DROP SCHEMA billing CASCADE;'],
  ['drop-materialized-view', 'DROP MATERIALIZED VIEW order_totals;'],
  ['drop-type', 'DROP TYPE order_status;'],
  ['drop-function', 'DROP FUNCTION order_total(bigint);'],
  ['drop-index', 'DROP INDEX orders_customer_idx;'],
  ['truncate', 'TRUNCATE orders;'],
  ['delete-without-where', 'DELETE FROM orders;'],
  ['delete-without-where', 'WITH gone AS (DELETE FROM orders RETURNING id) INSERT INTO archive SELECT id FROM gone;'],
  ['delete-without-where', 'DO $$\nBEGIN\n  DELETE FROM orders;\nEND\n$$;'],
  ['update-without-where', "UPDATE orders SET status = 'open';"],
  ['update-without-where', "DO LANGUAGE plpgsql $body$ BEGIN IF true THEN UPDATE orders SET status = 'open'; END IF; END $body$;"],
  ['update-without-where', "WITH u AS (UPDATE orders SET status = 'x' RETURNING 1) SELECT count(*) FROM u;"],
  ['change-column-type', 'ALTER TABLE orders ALTER COLUMN total TYPE numeric USING total::numeric;'],
  ['rename-column', 'ALTER TABLE orders RENAME COLUMN customer TO customer_id;'],
  ['rename-table', 'ALTER TABLE orders RENAME TO purchases;'],
  ['add-required-column', 'ALTER TABLE orders ADD COLUMN region text NOT NULL;'],
  ['set-not-null', 'ALTER TABLE orders ALTER COLUMN status SET NOT NULL;'],
  ['index-without-concurrently', 'CREATE INDEX orders_status_idx ON orders (status);'],
  ['constraint-without-not-valid', 'ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);'],
  ['constraint-without-not-valid', 'ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0);'],
  // inside DO blocks: a literal EXECUTE and a nested DO are read too
  ['drop-table', "DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$;"],
  ['drop-table', "DO $a$ BEGIN DO $b$ BEGIN DROP TABLE orders; END $b$; END $a$;"],
];

// The near miss of each rule, and statements that only look destructive (strings, dollar quotes, comments).
const CLEAN: Array<[RuleName | 'text', string]> = [
  ['drop-table', 'CREATE TABLE scratch (id int);\nINSERT INTO scratch VALUES (1);\nDROP TABLE scratch;'],
  ['drop-column', 'ALTER TABLE users DROP CONSTRAINT users_email_key;'],
  ['drop-schema', 'CREATE SCHEMA IF NOT EXISTS billing;'],
  ['drop-materialized-view', 'REFRESH MATERIALIZED VIEW order_totals;'],
  ['drop-type', "ALTER TYPE order_status ADD VALUE 'shipped';"],
  ['drop-function', "CREATE OR REPLACE FUNCTION order_total(bigint) RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint';"],
  ['drop-index', 'ALTER INDEX orders_customer_idx SET (fillfactor = 90);'],
  ['truncate', 'CREATE TABLE staging (id int);\nTRUNCATE staging;'],
  ['delete-without-where', "DELETE FROM orders WHERE status = 'void';"],
  ['delete-without-where', 'CREATE FUNCTION purge() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM orders; END $$;'],
  ['delete-without-where', 'CREATE FUNCTION purge2() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM orders; END;'],
  ['update-without-where', "UPDATE orders SET status = 'open' WHERE status IS NULL;"],
  ['update-without-where', "DO $$ BEGIN UPDATE orders SET status = 'open' WHERE status IS NULL; END $$;"],
  ['change-column-type', 'ALTER TABLE orders ALTER COLUMN total SET DEFAULT 0;'],
  ['rename-column', 'ALTER TABLE orders RENAME CONSTRAINT orders_pkey TO orders_pk;'],
  ['rename-table', 'CREATE TABLE draft (id int);\nALTER TABLE draft RENAME TO final;\nALTER TABLE final RENAME COLUMN id TO final_id;'],
  ['add-required-column', "ALTER TABLE orders ADD COLUMN region text NOT NULL DEFAULT 'eu', ADD COLUMN note text;"],
  ['set-not-null', 'ALTER TABLE orders ALTER COLUMN status DROP NOT NULL;'],
  ['index-without-concurrently', '-- cdk-rollback:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS orders_status_idx ON orders (status);'],
  ['index-without-concurrently', 'CREATE TABLE invoices (id int, customer text);\nCREATE INDEX invoices_customer_idx ON invoices (customer);'],
  ['constraint-without-not-valid', 'ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;'],
  ['constraint-without-not-valid', 'ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk;'],
  ['text', "INSERT INTO notes (body) VALUES ('DROP TABLE users; TRUNCATE x; DELETE FROM y');"],
  ['text', 'SELECT $$DROP TABLE users; DELETE FROM orders$$ AS sql, $q$ALTER TABLE t RENAME TO u$q$;'],
  ['text', "COMMENT ON TABLE orders IS 'ALTER TABLE orders DROP COLUMN total';"],
  ['text', '-- DROP TABLE users;\n/* TRUNCATE users; /* nested: DELETE FROM orders; */ */\nSELECT 1;'],
  ['text', "DO $$ BEGIN RAISE NOTICE 'DROP TABLE users'; PERFORM 'DELETE FROM orders'; END $$;"],
  ['text', "DO $$ BEGIN EXECUTE format('DELETE FROM %I WHERE id = 1', 'orders'); END $$;"],
];

let batch: { findings: LintFinding[]; syntax: SyntaxProblem[] } | undefined;
const fileOf = (kind: string, i: number) => `${kind}-${i}.sql`;
function results() {
  batch ??= lintMigrations([
    ...FLAGGED.map(([, sql], i) => ({ file: fileOf('flagged', i), sql })),
    ...CLEAN.map(([, sql], i) => ({ file: fileOf('clean', i), sql })),
  ]);
  return batch;
}
const rulesOf = (file: string) => results().findings.filter((f) => f.file === file).map((f) => f.rule);

describe('migration lint rules (PostgreSQL parser)', () => {
  test('the batch parses', () => {
    expect(results().syntax).toEqual([]);
  });

  test.each(FLAGGED.map(([rule, sql], i) => [rule, sql, i] as const))('%s: flags %s', (rule, _sql, i) => {
    expect(rulesOf(fileOf('flagged', i))).toEqual([rule]);
  });

  test.each(CLEAN.map(([rule, sql], i) => [rule, sql, i] as const))('%s: does not flag %s', (_rule, _sql, i) => {
    expect(rulesOf(fileOf('clean', i))).toEqual([]);
  });

  test("README's rule table lists every rule with its category, and nothing else", () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### Migration lint'), readme.indexOf('### A failing migration'));
    const rows = [...section.matchAll(/^\| `([a-z-]+)` \| ([a-z]+)/gm)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual(Object.entries(LINT_RULES).map(([name, rule]) => [name, rule.category]));
  });

  test('every rule has a flagged and a clean case', () => {
    const names = Object.keys(LINT_RULES).sort();
    expect([...new Set(FLAGGED.map(([r]) => r))].sort()).toEqual(names);
    expect([...new Set(CLEAN.map(([r]) => r).filter((r) => r !== 'text'))].sort()).toEqual(names);
  });
});

describe('migration lint positions and messages', () => {
  test('reports statement index, line (of the code, after comments) and what the statement does', () => {
    const sql = "-- café: 0003\nCREATE TABLE a (id int);\n\n/* é */\nDROP TABLE b;\nSELECT 'ü';\n  UPDATE c SET x = 1;\n";
    expect(lintMigrations([{ file: '0003_x.sql', sql }]).findings).toEqual([
      { file: '0003_x.sql', statement: 2, line: 5, rule: 'drop-table', change: 'DROP TABLE b', inDoBlock: false },
      { file: '0003_x.sql', statement: 4, line: 7, rule: 'update-without-where', change: 'UPDATE c without WHERE', inDoBlock: false },
    ]);
  });

  test('inside a DO block: the line of the statement in the body', () => {
    const sql = 'SELECT 1;\nDO $$\nDECLARE n int;\nBEGIN\n  SELECT count(*) INTO n FROM t;\n  IF n > 0 THEN\n    TRUNCATE t;\n  END IF;\nEND $$;\n';
    const [f] = lintMigrations([{ file: 'd.sql', sql }]).findings;
    expect(f).toEqual({ file: 'd.sql', statement: 2, line: 7, rule: 'truncate', change: 'TRUNCATE t', inDoBlock: true });
    expect(formatFinding(f)).toBe(`d.sql statement 2 (line 7, in a DO block): TRUNCATE t [truncate]. Fix: ${LINT_RULES.truncate.fix}`);
  });

  test('syntax errors name the file and the line, also in a DO body', () => {
    const { syntax } = lintMigrations([
      { file: '0001_ok.sql', sql: 'SELECT 1;' },
      { file: '0002_typo.sql', sql: 'CREATE TABLE a (id int);\n\nDROP TABL a;' },
      { file: '0003_do.sql', sql: 'SELECT 1;\nDO $$\nBEGIN\n  UPDATE t SET x = 1 WHERE;\nEND $$;' },
      { file: '0004_undeclared.sql', sql: 'DO $$ BEGIN SELECT 1 INTO n; END $$;' },
    ]);
    expect(syntax).toEqual([
      { file: '0002_typo.sql', line: 3, message: 'syntax error at or near "TABL"' },
      // PL/pgSQL reports no position for this one: the line of the DO block
      { file: '0003_do.sql', line: 2, message: expect.stringMatching(/^in the DO block \(statement 2\): syntax error at end of input/) },
      { file: '0004_undeclared.sql', line: 1, message: 'in the DO block (statement 1): "n" is not a known variable' },
    ]);
  });
});

describe('migration lint at synth (DatabaseMigrations)', () => {
  function folder(files: Record<string, string>): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lint-'));
    for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
    return dir;
  }
  function synth(files: Record<string, string>) {
    const stack = new Stack(new App(), 'App');
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'd', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(stack, 'Db', { clusterIdentifier: 'c' });
    const secret = secretsmanager.Secret.fromSecretNameV2(stack, 'S', 'db');
    const migrations = new DatabaseMigrations(stack, 'M', { cluster, vpc, secret, migrationsDir: folder({ '0001_base.sql': 'CREATE TABLE users (id int);', ...files }) });
    return { stack, migrations };
  }
  const fails = (files: Record<string, string>) => () => synth(files);

  test('a destructive change fails synth with file, statement, line, rule and fix', () => {
    expect(fails({ '0002_drop.sql': 'SELECT 1;\nALTER TABLE users DROP COLUMN email;' })).toThrow(
      '`migrationsDir` fails the migration lint: 0002_drop.sql statement 2 (line 2): DROP COLUMN users.email [drop-column]. ' +
      `Fix: ${LINT_RULES['drop-column'].fix}. Or let a file through: destructive changes with '-- cdk-rollback:allow-destructive <reason>' in the file.`);
  });

  test('allow-destructive with a reason lets destructive changes through, not breaking ones', () => {
    const allow = '-- cdk-rollback:allow-destructive email moved to contacts in 0002\n';
    expect(fails({ '0002_drop.sql': `${allow}ALTER TABLE users DROP COLUMN email;` })).not.toThrow();
    expect(fails({ '0002_drop.sql': `${allow}ALTER TABLE users RENAME COLUMN name TO full_name;` })).toThrow(
      "[rename-column]. Fix: add the new column, write both, backfill, switch reads, drop the old column in a later release. Or let a file through: changes that break the previous release with '-- cdk-rollback:allow-breaking <reason>' in the file.");
  });

  test('allow-breaking with a reason lets breaking changes through, not destructive ones', () => {
    const allow = '-- cdk-rollback:allow-breaking no traffic shift: the service is stopped during this release\n';
    expect(fails({ '0002_rename.sql': `${allow}ALTER TABLE users RENAME TO accounts;` })).not.toThrow();
    expect(fails({ '0002_rename.sql': `${allow}TRUNCATE users;` })).toThrow('0002_rename.sql statement 1 (line 2): TRUNCATE users [truncate]');
  });

  test.each(['allow-destructive', 'allow-breaking'])('%s needs a reason', (name) => {
    expect(fails({ '0002_x.sql': `-- cdk-rollback:${name}\nSELECT 1;` })).toThrow(`0002_x.sql: '-- cdk-rollback:${name}' needs a reason after it`);
  });

  test('a syntax error fails synth naming the file and the line (down files are parsed too)', () => {
    expect(fails({ '0002_typo.sql': 'SELECT 1;\nALTER TABLE users ADD COLUMN x intt NOT NULL DEFAULT;' })).toThrow(
      '`migrationsDir`: PostgreSQL cannot parse 0002_typo.sql line 2: syntax error at or near ";"');
    expect(fails({ '0001_base.down.sql': 'DROP TABLE;' })).toThrow('`migrationsDir`: PostgreSQL cannot parse 0001_base.down.sql line 1: syntax error at or near ";"');
  });

  test('locking changes are synth warnings with the fix, and can be acknowledged', () => {
    const { stack, migrations } = synth({
      '0002_index.sql': 'CREATE INDEX users_name_idx ON users (name);\nALTER TABLE users ADD CONSTRAINT users_id_positive CHECK (id > 0);',
    });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('migrationsDir'));
    expect(warnings.map((w) => w.entry.data)).toEqual([
      `migrationsDir: 0002_index.sql statement 1 (line 1): CREATE INDEX users_name_idx ON users without CONCURRENTLY [index-without-concurrently]. Fix: ${LINT_RULES['index-without-concurrently'].fix} [ack: cdk-rollback:lint:index-without-concurrently]`,
      `migrationsDir: 0002_index.sql statement 2 (line 2): ADD CONSTRAINT users_id_positive CHECK on users without NOT VALID [constraint-without-not-valid]. Fix: ${LINT_RULES['constraint-without-not-valid'].fix} [ack: cdk-rollback:lint:constraint-without-not-valid]`,
    ]);
    expect(warnings[0].id).toBe('/App/M');
    CdkAnnotations.of(migrations).acknowledgeWarning('cdk-rollback:lint:index-without-concurrently', 'users is small');
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('migrationsDir')).map((w) => w.entry.data))
      .toEqual([expect.stringContaining('[constraint-without-not-valid]')]);
  });

  test('runs from the built package (dist/lib) with the worker that package.json ships', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
    expect(pkg.files).toContain('lib/private/pg-parse-worker.js');
    expect(pkg.dependencies['libpg-query']).toBeDefined();
    const script = "const l = require('./dist/lib/private/migrations-lint'); process.stdout.write(JSON.stringify(l.lintMigrations([{ file: 'a.sql', sql: 'DROP TABLE t;' }])))";
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: path.join(__dirname, '..'), encoding: 'utf8' }));
    expect(out.findings.map((f: LintFinding) => f.rule)).toEqual(['drop-table']);
  });
});

describe('SQL splitting and directives', () => {
  test('splits on semicolons outside strings, identifiers, dollar quotes and comments', () => {
    const sql = "INSERT INTO t VALUES ('a;b', E'c\\';d');\nCREATE TABLE \"x;y\" (id int);\n/* ; /* nested ; */ */\nDO $body$ BEGIN PERFORM 1; END $body$;\n-- trailing; comment\n";
    const stmts = splitStatements(sql);
    expect(stmts.map((s) => [s.index, s.line])).toEqual([[1, 1], [2, 2], [3, 3]]);
    expect(stmts[0].text).toBe("INSERT INTO t VALUES ('a;b', E'c\\';d')");
    expect(stmts[1].text).toBe('CREATE TABLE "x;y" (id int)');
    expect(stmts[2].text).toBe('/* ; /* nested ; */ */\nDO $body$ BEGIN PERFORM 1; END $body$');
  });

  test('reads a directive and its argument', () => {
    expect(directive('-- cdk-rollback:allow-destructive moved to v2\nDROP TABLE a;', 'cdk-rollback:allow-destructive')).toBe('moved to v2');
    expect(directive('-- cdk-rollback:no-transaction\n', 'cdk-rollback:no-transaction')).toBe('');
    expect(directive('SELECT 1; -- cdk-rollback:no-transaction', 'cdk-rollback:no-transaction')).toBeUndefined();
  });
});
