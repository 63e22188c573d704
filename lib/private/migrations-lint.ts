import { parse, Statement } from 'pgsql-ast-parser';
import { MigrationFile } from '../../lambda/database-migrations/folder';
import { ALLOW_DESTRUCTIVE_DIRECTIVE, directive, splitStatements, SqlStatement } from '../../lambda/database-migrations/sql';

/** One destructive statement found in a migration. */
export interface DestructiveFinding {
  readonly file: string;
  /** 1-based statement index and line. */
  readonly statement: number;
  readonly line: number;
  /** What it does, e.g. `DROP TABLE`, `DELETE without WHERE`. */
  readonly change: string;
}

/** What the parser's AST says a statement destroys, or [] when nothing. */
function fromAst(ast: Statement): string[] {
  switch (ast.type) {
    case 'drop table': return ['DROP TABLE'];
    case 'truncate table': return ['TRUNCATE'];
    case 'delete': return ast.where ? [] : ['DELETE without WHERE'];
    case 'update': return ast.where ? [] : ['UPDATE without WHERE'];
    case 'alter table': {
      const found: string[] = [];
      for (const change of ast.changes) {
        if (change.type === 'drop column') found.push('DROP COLUMN');
        if (change.type === 'alter column' && change.alter.type === 'set type') found.push('ALTER COLUMN ... TYPE');
      }
      return found;
    }
    case 'with': return fromAst(ast.in as Statement);
    default: return [];
  }
}

/**
 * Keyword scan of a statement the parser does not understand (pgsql-ast-parser covers most DML/DDL but not, for
 * example, DROP SCHEMA). Works on the statement with comments removed and strings blanked.
 */
function fromKeywords(stmt: SqlStatement): string[] {
  const code = ` ${stmt.code.replace(/\s+/g, ' ').toUpperCase()} `;
  const found: string[] = [];
  if (/^ DROP (TABLE|FOREIGN TABLE) /.test(code)) found.push('DROP TABLE');
  if (/^ DROP SCHEMA /.test(code)) found.push('DROP SCHEMA');
  if (/^ TRUNCATE /.test(code)) found.push('TRUNCATE');
  if (/^ (WITH .* )?DELETE FROM /.test(code) && !/ WHERE /.test(code)) found.push('DELETE without WHERE');
  if (/^ (WITH .* )?UPDATE /.test(code) && !/ WHERE /.test(code)) found.push('UPDATE without WHERE');
  if (/^ ALTER TABLE /.test(code)) {
    if (/[ ,]DROP (COLUMN )?(?!CONSTRAINT |DEFAULT |NOT NULL|IDENTITY|EXPRESSION)/.test(code)) found.push('DROP COLUMN');
    if (/ ALTER (COLUMN )?\S+ (SET DATA )?TYPE /.test(code)) found.push('ALTER COLUMN ... TYPE');
  }
  return found;
}

/** The destructive statements of `sql` (the file `file`), parsed with pgsql-ast-parser, statement by statement. */
export function findDestructive(file: string, sql: string): DestructiveFinding[] {
  const findings: DestructiveFinding[] = [];
  for (const stmt of splitStatements(sql)) {
    let changes: string[];
    try {
      changes = parse(stmt.text).flatMap(fromAst);
    } catch {
      changes = fromKeywords(stmt);
    }
    for (const change of [...new Set(changes)]) findings.push({ file, statement: stmt.index, line: stmt.line, change });
  }
  return findings;
}

/**
 * Fails when an up migration contains a destructive change (DROP TABLE / DROP COLUMN / DROP SCHEMA / TRUNCATE /
 * DELETE or UPDATE without WHERE / ALTER COLUMN ... TYPE) and does not carry `-- cdk-rollback:allow-destructive <reason>`.
 */
export function checkDestructive(files: MigrationFile[], prop: string): void {
  const problems: string[] = [];
  for (const f of files) {
    const allowed = directive(f.sql, ALLOW_DESTRUCTIVE_DIRECTIVE);
    if (allowed !== undefined) {
      if (allowed === '') problems.push(`${f.file}: '-- ${ALLOW_DESTRUCTIVE_DIRECTIVE}' needs a reason after it`);
      continue;
    }
    for (const d of findDestructive(f.file, f.sql)) {
      problems.push(`${d.file} statement ${d.statement} (line ${d.line}): ${d.change}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `\`${prop}\` holds destructive migrations: ${problems.join('; ')}. ` +
      `Make the change backward compatible, or add '-- ${ALLOW_DESTRUCTIVE_DIRECTIVE} <reason>' to the file`);
  }
}
