/**
 * A small PostgreSQL lexer: splits a migration file into statements (so each runs on its own, its position is known
 * and `CREATE INDEX CONCURRENTLY` can run outside a transaction block) and reads the `-- cdk-rollback:` directives.
 *
 * It understands what can hide a `;`: '…' strings (with '' and, for E'…', backslash escapes), "identifiers",
 * $tag$ … $tag$ dollar quotes, -- line comments and nested /* block comments *\/. No CDK imports.
 */

export interface SqlStatement {
  /** The statement text, without the terminating `;` and without surrounding whitespace. */
  readonly text: string;
  /** The statement text with comments removed and string/identifier contents blanked (for keyword scans). */
  readonly code: string;
  /** 1-based index of the statement in the file. */
  readonly index: number;
  /** 1-based line where the statement starts. */
  readonly line: number;
  /** 0-based offset of the statement's first character in the file. */
  readonly offset: number;
}

function isIdentChar(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z0-9_]/.test(c);
}

/** Splits `sql` into statements; empty statements (only whitespace and comments) are dropped. */
export function splitStatements(sql: string): SqlStatement[] {
  const out: SqlStatement[] = [];
  let start = 0;
  let code = '';
  let i = 0;
  const n = sql.length;
  const flush = (end: number) => {
    const raw = sql.slice(start, end);
    const lead = raw.length - raw.trimStart().length;
    const text = raw.trim();
    if (code.trim() !== '') {
      const offset = start + lead;
      out.push({ text, code: code.trim(), index: out.length + 1, line: lineAt(sql, offset), offset });
    }
    code = '';
  };
  while (i < n) {
    const c = sql[i];
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? n : end;
      code += ' ';
    } else if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') { depth++; i += 2; } else if (sql[i] === '*' && sql[i + 1] === '/') { depth--; i += 2; } else i++;
      }
      code += ' ';
    } else if (c === '\'') {
      const escapes = (sql[i - 1] === 'E' || sql[i - 1] === 'e') && !isIdentChar(sql[i - 2]);
      i++;
      while (i < n) {
        if (escapes && sql[i] === '\\') { i += 2; continue; }
        if (sql[i] === '\'') {
          if (sql[i + 1] === '\'') { i += 2; continue; }
          break;
        }
        i++;
      }
      i++;
      code += '\'\'';
    } else if (c === '"') {
      i++;
      while (i < n) {
        if (sql[i] === '"') {
          if (sql[i + 1] === '"') { i += 2; continue; }
          break;
        }
        i++;
      }
      i++;
      code += '""';
    } else if (c === '$' && !isIdentChar(sql[i - 1])) {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (m) {
        const tag = m[0];
        const end = sql.indexOf(tag, i + tag.length);
        i = end === -1 ? n : end + tag.length;
        code += '$$$$';
      } else {
        code += c;
        i++;
      }
    } else if (c === ';') {
      flush(i);
      i++;
      start = i;
    } else {
      code += c;
      i++;
    }
  }
  flush(n);
  return out;
}

/** 1-based line number of `offset` in `text`. */
export function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text[i] === '\n') line++;
  return line;
}

/** Directive that runs a migration outside a transaction (e.g. for CREATE INDEX CONCURRENTLY). */
export const NO_TRANSACTION_DIRECTIVE = 'cdk-rollback:no-transaction';
/** Directive that lets a migration contain destructive changes; a reason must follow it. */
export const ALLOW_DESTRUCTIVE_DIRECTIVE = 'cdk-rollback:allow-destructive';

/** The argument of a `-- <directive> ...` line comment, '' when present without one, undefined when absent. */
export function directive(sql: string, name: string): string | undefined {
  for (const line of sql.split('\n')) {
    const m = /^\s*--\s*(\S+)(.*)$/.exec(line);
    if (m && m[1] === name) return m[2].trim();
  }
  return undefined;
}
