import { findDestructive } from '../lib/private/migrations-lint';
import { directive, splitStatements } from '../lambda/database-migrations/sql';

const changes = (sql: string) => findDestructive('f.sql', sql).map((d) => d.change);

describe('destructive-change lint', () => {
  test.each([
    ['DROP TABLE users;', 'DROP TABLE'],
    ['DROP TABLE IF EXISTS a, b CASCADE;', 'DROP TABLE'],
    ['ALTER TABLE users DROP COLUMN email;', 'DROP COLUMN'],
    ['ALTER TABLE users DROP email;', 'DROP COLUMN'],
    ['DROP SCHEMA billing CASCADE;', 'DROP SCHEMA'],
    ['TRUNCATE users;', 'TRUNCATE'],
    ['DELETE FROM users;', 'DELETE without WHERE'],
    ['UPDATE users SET email = lower(email);', 'UPDATE without WHERE'],
    ['ALTER TABLE users ALTER COLUMN id TYPE bigint;', 'ALTER COLUMN ... TYPE'],
    ['ALTER TABLE users ALTER COLUMN id SET DATA TYPE bigint USING id::bigint;', 'ALTER COLUMN ... TYPE'],
  ])('flags %s', (sql, change) => {
    expect(changes(sql)).toEqual([change]);
  });

  test.each([
    'DELETE FROM users WHERE id = 1;',
    'UPDATE users SET email = lower(email) WHERE email <> lower(email);',
    'ALTER TABLE users ADD COLUMN name text;',
    'ALTER TABLE users DROP CONSTRAINT users_email_key;',
    'ALTER TABLE users ALTER COLUMN name DROP NOT NULL;',
    'DROP INDEX users_email;',
    "INSERT INTO notes (body) VALUES ('DROP TABLE users; TRUNCATE x');",
    '-- DROP TABLE users;\nSELECT 1;',
    '/* TRUNCATE users; */ SELECT 1;',
    'CREATE FUNCTION f() RETURNS void AS $$ BEGIN DELETE FROM t; END $$ LANGUAGE plpgsql;',
  ])('does not flag %s', (sql) => {
    expect(changes(sql)).toEqual([]);
  });

  test('reports statement index and line', () => {
    expect(findDestructive('0003_x.sql', 'CREATE TABLE a (id int);\n\nDROP TABLE b;\n')).toEqual([
      { file: '0003_x.sql', statement: 2, line: 3, change: 'DROP TABLE' },
    ]);
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
