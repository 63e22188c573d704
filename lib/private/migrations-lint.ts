import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import * as path from 'path';
import { Annotations } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { MigrationFile } from '../../lambda/shared/migrations-folder';
import { ALLOW_DESTRUCTIVE_DIRECTIVE, directive } from '../../lambda/shared/sql';
import { packageRoot } from './package-root';

/** Directive that lets a file make changes that break the previous release while both run (a traffic shift). */
export const ALLOW_BREAKING_DIRECTIVE = 'cdk-rollback:allow-breaking';

/**
 * What a rule protects:
 * - `destructive`: data or objects are gone; fails synth unless the file says `-- cdk-rollback:allow-destructive <reason>`;
 * - `breaking`: the previous release fails against the new schema while both serve traffic; fails synth unless the
 *   file says `-- cdk-rollback:allow-breaking <reason>`;
 * - `locking`: blocks writes to a live table while it runs; a synth warning.
 */
export type RuleCategory = 'destructive' | 'breaking' | 'locking';

export interface LintRule {
  readonly category: RuleCategory;
  /** How to make the change safely. */
  readonly fix: string;
}

const LATER = 'stop using it in one release and remove it in a later one (expand/contract)';

/** Every rule of the migration lint, by name (README "Migration lint" has the same table). */
export const LINT_RULES = {
  'drop-table': { category: 'destructive', fix: `${LATER}; its data is then gone except in snapshots` },
  'drop-column': { category: 'destructive', fix: `${LATER}; its data is then gone except in snapshots` },
  'drop-schema': { category: 'destructive', fix: `${LATER}; everything in it is then gone except in snapshots` },
  'drop-materialized-view': { category: 'destructive', fix: LATER },
  'drop-type': { category: 'destructive', fix: LATER },
  'drop-function': { category: 'destructive', fix: LATER },
  'drop-index': { category: 'destructive', fix: `${LATER} (the previous release's queries may need it); use DROP INDEX CONCURRENTLY in a '-- cdk-rollback:no-transaction' file` },
  'truncate': { category: 'destructive', fix: 'delete the rows you mean with a WHERE, or keep them' },
  'delete-without-where': { category: 'destructive', fix: 'add a WHERE that names the rows to delete' },
  'update-without-where': { category: 'destructive', fix: 'add a WHERE that names the rows to change (a backfill: WHERE col IS NULL, in batches)' },
  'change-column-type': { category: 'destructive', fix: 'add a column of the new type, write both, backfill, switch reads, drop the old column in a later release' },
  'rename-column': { category: 'breaking', fix: 'add the new column, write both, backfill, switch reads, drop the old column in a later release' },
  'rename-table': { category: 'breaking', fix: 'create the new table (or a view with the old name over it) and drop the old name in a later release' },
  'add-required-column': { category: 'breaking', fix: 'give the column a DEFAULT, or add it nullable, backfill, and set NOT NULL in a later release' },
  'set-not-null': { category: 'breaking', fix: 'set NOT NULL in a release after the one that always writes the column; first ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (no scan)' },
  'index-without-concurrently': { category: 'locking', fix: "use CREATE INDEX CONCURRENTLY in a file with '-- cdk-rollback:no-transaction' (and IF NOT EXISTS, so it can run again)" },
  'constraint-without-not-valid': { category: 'locking', fix: 'add it with NOT VALID (checks new rows only, no scan), then VALIDATE CONSTRAINT in a later migration (does not block writes)' },
} as const satisfies Record<string, LintRule>;

export type RuleName = keyof typeof LINT_RULES;

/** One statement a rule flags. */
export interface LintFinding {
  readonly file: string;
  /** 1-based index of the top-level statement in the file (a DO block counts as one). */
  readonly statement: number;
  /** 1-based line of the statement (inside a DO block: of the statement in its body). */
  readonly line: number;
  readonly rule: RuleName;
  /** What the statement does, e.g. `DROP TABLE orders`. */
  readonly change: string;
  /** The statement is inside the body of a DO block. */
  readonly inDoBlock: boolean;
}

/** A file the PostgreSQL parser rejects. */
export interface SyntaxProblem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

/** A parse-tree node: `{ "<Type>": { ...fields } }` (libpg-query's JSON form of PostgreSQL's parse nodes). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parse trees are read as plain JSON, checked field by field
type Json = { [key: string]: any };

/** What the parser child process returns for one file (see pg-parse-worker.js). */
type ParsedFile =
  | { readonly stmts: Array<{ stmt?: Json; stmt_location?: number; stmt_len?: number }> }
  | { readonly error: { readonly message: string; readonly position: number } };

const parseCache = new Map<string, ParsedFile[]>();

/**
 * Parses `sqls` with PostgreSQL's parser (libpg-query) in a child process: its WebAssembly module only loads
 * asynchronously and construct constructors are synchronous. One process per call; results are cached by content.
 */
export function parseSqlFiles(sqls: string[]): ParsedFile[] {
  const key = createHash('sha256').update(JSON.stringify(sqls)).digest('hex');
  const cached = parseCache.get(key);
  if (cached) return cached;
  const worker = path.join(packageRoot(), 'lib', 'private', 'pg-parse-worker.js');
  const input = JSON.stringify({ module: require.resolve('libpg-query'), files: sqls });
  const run = (flags: string[]) => execFileSync(process.execPath, [...flags, worker], {
    input, encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out: string;
  try {
    // One parse needs no optimized WebAssembly: without --liftoff-only, V8 compiles the whole module again in the
    // background and the process waits for that at exit (2-3 s on a busy machine, measured).
    out = run(['--liftoff-only']);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    try {
      if (!/bad option|unknown.*liftoff/i.test(err.stderr ?? '')) throw e;
      out = run([]); // a Node.js whose V8 no longer knows the flag
    } catch (again) {
      const last = again as { stderr?: string; message: string };
      throw new Error(`cdk-rollback: the PostgreSQL parser (${worker}) failed: ${(last.stderr || last.message).trim()}`);
    }
  }
  const parsed = JSON.parse(out) as ParsedFile[];
  parseCache.set(key, parsed);
  return parsed;
}

/** The single `{ Type: body }` entry of a node. */
function entry(node: Json | undefined): [string, Json] | undefined {
  if (!node || typeof node !== 'object') return undefined;
  const keys = Object.keys(node);
  return keys.length === 1 ? [keys[0], node[keys[0]] as Json] : undefined;
}

/** `schema.name` of a name list (`[{String: {sval}}]`), a RangeVar, a TypeName or an ObjectWithArgs. */
function nameOf(node: Json | undefined): string {
  const e = entry(node);
  if (!e) return '?';
  const [type, body] = e;
  const strings = (list: Json[] | undefined) => (list ?? []).map((s) => s.String?.sval ?? '?').join('.');
  switch (type) {
    case 'List': return strings(body.items);
    case 'String': return body.sval;
    case 'TypeName': return strings(body.names);
    case 'ObjectWithArgs': return strings(body.objname);
    case 'RangeVar': return relName(body);
    default: return '?';
  }
}

function relName(rangeVar: Json | undefined): string {
  if (!rangeVar) return '?';
  return rangeVar.schemaname ? `${rangeVar.schemaname}.${rangeVar.relname}` : rangeVar.relname;
}

const DROPS: Record<string, [RuleName, string]> = {
  OBJECT_TABLE: ['drop-table', 'DROP TABLE'],
  OBJECT_FOREIGN_TABLE: ['drop-table', 'DROP FOREIGN TABLE'],
  OBJECT_SCHEMA: ['drop-schema', 'DROP SCHEMA'],
  OBJECT_MATVIEW: ['drop-materialized-view', 'DROP MATERIALIZED VIEW'],
  OBJECT_TYPE: ['drop-type', 'DROP TYPE'],
  OBJECT_DOMAIN: ['drop-type', 'DROP DOMAIN'],
  OBJECT_FUNCTION: ['drop-function', 'DROP FUNCTION'],
  OBJECT_PROCEDURE: ['drop-function', 'DROP PROCEDURE'],
  OBJECT_ROUTINE: ['drop-function', 'DROP ROUTINE'],
  OBJECT_AGGREGATE: ['drop-function', 'DROP AGGREGATE'],
  OBJECT_INDEX: ['drop-index', 'DROP INDEX'],
};

/** Nodes whose statements are stored, not run, by the migration (function bodies, rules, prepared statements). */
const NOT_RUN = new Set(['CreateFunctionStmt', 'RuleStmt', 'PrepareStmt', 'cdkRollbackBody']);

/** Every DELETE / UPDATE the statement runs (also in CTEs, sub-statements and `EXPLAIN ANALYZE`). */
function dataChanges(node: unknown, out: Array<[string, Json]>): Array<[string, Json]> {
  if (Array.isArray(node)) {
    for (const item of node) dataChanges(item, out);
  } else if (node !== null && typeof node === 'object') {
    for (const [key, value] of Object.entries(node as Json)) {
      if (NOT_RUN.has(key)) continue;
      if (key === 'ExplainStmt' && !(value.options ?? []).some((o: Json) => o.DefElem?.defname === 'analyze')) continue;
      if (key === 'DeleteStmt' || key === 'UpdateStmt') out.push([key, value]);
      dataChanges(value, out);
    }
  }
  return out;
}

/** What one statement does that a rule flags. `created`: tables created (without IF NOT EXISTS) earlier in the file. */
function checkStatement(node: Json, created: Set<string>): Array<[RuleName, string]> {
  const e = entry(node);
  if (!e) return [];
  const [type, s] = e;
  const found: Array<[RuleName, string]> = [];
  const isNew = (rangeVar: Json | undefined) => rangeVar !== undefined && created.has(rangeVar.relname);

  for (const [kind, dml] of dataChanges(node, [])) {
    if (dml.whereClause || isNew(dml.relation)) continue;
    found.push(kind === 'DeleteStmt'
      ? ['delete-without-where', `DELETE FROM ${relName(dml.relation)} without WHERE`]
      : ['update-without-where', `UPDATE ${relName(dml.relation)} without WHERE`]);
  }

  switch (type) {
    case 'CreateStmt':
      if (!s.if_not_exists) created.add(s.relation.relname);
      break;
    case 'CreateTableAsStmt':
      if (!s.if_not_exists && s.objtype === 'OBJECT_TABLE') created.add(s.into.rel.relname);
      break;
    case 'DropStmt': {
      const drop = DROPS[s.removeType];
      if (!drop) break;
      const objects = (s.objects ?? []) as Json[];
      const old = drop[0] === 'drop-table' ? objects.filter((o) => !created.has(nameOf(o).split('.').pop()!)) : objects;
      if (old.length > 0) found.push([drop[0], `${drop[1]} ${old.map(nameOf).join(', ')}`]);
      break;
    }
    case 'TruncateStmt': {
      const old = ((s.relations ?? []) as Json[]).filter((r) => !isNew(r.RangeVar));
      if (old.length > 0) found.push(['truncate', `TRUNCATE ${old.map(nameOf).join(', ')}`]);
      break;
    }
    case 'RenameStmt':
      if (isNew(s.relation)) {
        if (s.renameType === 'OBJECT_TABLE') created.add(s.newname);
        break;
      }
      if (s.renameType === 'OBJECT_COLUMN' && s.relationType === 'OBJECT_TABLE') {
        found.push(['rename-column', `RENAME COLUMN ${relName(s.relation)}.${s.subname} TO ${s.newname}`]);
      } else if (s.renameType === 'OBJECT_TABLE') {
        found.push(['rename-table', `RENAME TABLE ${relName(s.relation)} TO ${s.newname}`]);
      }
      break;
    case 'IndexStmt':
      if (!s.concurrent && !isNew(s.relation)) {
        found.push(['index-without-concurrently', `CREATE INDEX ${s.idxname ?? ''} ON ${relName(s.relation)} without CONCURRENTLY`.replace('  ', ' ')]);
      }
      break;
    case 'AlterTableStmt': {
      if (s.objtype !== 'OBJECT_TABLE' && s.objtype !== 'OBJECT_FOREIGN_TABLE') break;
      const table = relName(s.relation);
      const fresh = isNew(s.relation);
      for (const c of (s.cmds ?? []) as Json[]) {
        const cmd = c.AlterTableCmd as Json;
        if (!cmd) continue;
        switch (cmd.subtype) {
          case 'AT_DropColumn':
            if (!fresh) found.push(['drop-column', `DROP COLUMN ${table}.${cmd.name}`]);
            break;
          case 'AT_AlterColumnType':
            if (!fresh) found.push(['change-column-type', `ALTER COLUMN ${table}.${cmd.name} TYPE`]);
            break;
          case 'AT_SetNotNull':
            if (!fresh) found.push(['set-not-null', `ALTER COLUMN ${table}.${cmd.name} SET NOT NULL`]);
            break;
          case 'AT_AddColumn': {
            const col = cmd.def?.ColumnDef as Json | undefined;
            const kinds = ((col?.constraints ?? []) as Json[]).map((k) => k.Constraint?.contype as string);
            const required = kinds.includes('CONSTR_NOTNULL') || kinds.includes('CONSTR_PRIMARY');
            const filled = kinds.some((k) => ['CONSTR_DEFAULT', 'CONSTR_IDENTITY', 'CONSTR_GENERATED'].includes(k)) || col?.raw_default;
            if (!fresh && required && !filled) found.push(['add-required-column', `ADD COLUMN ${table}.${col?.colname} NOT NULL without DEFAULT`]);
            break;
          }
          case 'AT_AddConstraint': {
            const k = cmd.def?.Constraint as Json | undefined;
            if (!k || fresh) break;
            if (k.contype === 'CONSTR_NOTNULL') {
              found.push(['set-not-null', `ADD CONSTRAINT ${k.conname ?? ''} NOT NULL on ${table}`.replace('  ', ' ')]);
            } else if ((k.contype === 'CONSTR_FOREIGN' || k.contype === 'CONSTR_CHECK') && !k.skip_validation) {
              const what = k.contype === 'CONSTR_FOREIGN' ? 'FOREIGN KEY' : 'CHECK';
              found.push(['constraint-without-not-valid', `ADD CONSTRAINT ${k.conname ?? ''} ${what} on ${table} without NOT VALID`.replace('  ', ' ')]);
            }
            break;
          }
        }
      }
      break;
    }
  }
  return found;
}

/** Maps byte offsets of a file (the parser's positions) to lines and finds where a statement's code starts. */
class Positions {
  private readonly bytes: Buffer;
  constructor(sql: string) {
    this.bytes = Buffer.from(sql, 'utf8');
  }

  /** 1-based line of byte `offset`. */
  line(offset: number): number {
    let line = 1;
    const end = Math.min(Math.max(offset, 0), this.bytes.length);
    for (let i = 0; i < end; i++) if (this.bytes[i] === 0x0a) line++;
    return line;
  }

  /** Line of the first code character at or after byte `offset` (skipping whitespace and comments). */
  codeLine(offset: number): number {
    const text = this.bytes.subarray(offset).toString('utf8');
    let i = 0;
    for (;;) {
      const ws = /^\s+/.exec(text.slice(i));
      if (ws) i += ws[0].length;
      if (text.startsWith('--', i)) {
        const nl = text.indexOf('\n', i);
        i = nl === -1 ? text.length : nl + 1;
      } else if (text.startsWith('/*', i)) {
        let depth = 1;
        i += 2;
        while (i < text.length && depth > 0) {
          if (text.startsWith('/*', i)) { depth++; i += 2; } else if (text.startsWith('*/', i)) { depth--; i += 2; } else i++;
        }
      } else {
        break;
      }
    }
    return this.line(offset + Buffer.byteLength(text.slice(0, i), 'utf8'));
  }
}

/** The findings of one parsed file, or its syntax problem. */
export function lintParsedFile(file: string, sql: string, parsed: ParsedFile): { findings: LintFinding[]; syntax?: SyntaxProblem } {
  const pos = new Positions(sql);
  if ('error' in parsed) {
    const line = parsed.error.position >= 0 ? pos.line(parsed.error.position) : 1;
    return { findings: [], syntax: { file, line, message: parsed.error.message } };
  }
  const findings: LintFinding[] = [];
  const created = new Set<string>();
  let syntax: SyntaxProblem | undefined;
  type DoBody = { statements: Array<{ stmt: Json; lineno: number }>; error?: string; errorLine?: number };
  const visit = (node: Json, statement: number, line: number, inDoBlock: boolean, bodyLine: number) => {
    for (const [rule, change] of checkStatement(node, created)) findings.push({ file, statement, line, rule, change, inDoBlock });
    const body = node.DoStmt?.cdkRollbackBody as DoBody | undefined;
    if (!body) return;
    for (const inner of body.statements) visit(inner.stmt, statement, bodyLine + inner.lineno - 1, true, bodyLine + inner.lineno - 1);
    if (body.error !== undefined && !syntax) {
      const at = body.errorLine !== undefined ? bodyLine + body.errorLine - 1 : line;
      syntax = { file, line: at, message: `in the DO block (statement ${statement}): ${body.error}` };
    }
  };
  parsed.stmts.forEach((raw, i) => {
    if (!raw.stmt) return;
    const line = pos.codeLine(raw.stmt_location ?? 0);
    // PL/pgSQL counts lines from the line where the DO body's string starts.
    const as = ((raw.stmt.DoStmt?.args ?? []) as Json[]).map((a) => a.DefElem).find((d) => d?.defname === 'as');
    visit(raw.stmt, i + 1, line, false, as?.location !== undefined ? pos.line(as.location) : line);
  });
  return { findings, syntax };
}

/** Parses and lints `files` (up migrations) and syntax-checks `downFiles`; one parser process for all. */
export function lintMigrations(files: Array<{ file: string; sql: string }>, downFiles: Array<{ file: string; sql: string }> = []): {
  findings: LintFinding[]; syntax: SyntaxProblem[];
} {
  const all = [...files, ...downFiles];
  const parsed = parseSqlFiles(all.map((f) => f.sql));
  const findings: LintFinding[] = [];
  const syntax: SyntaxProblem[] = [];
  all.forEach((f, i) => {
    const r = lintParsedFile(f.file, f.sql, parsed[i]);
    if (r.syntax) syntax.push(r.syntax);
    if (i < files.length) findings.push(...r.findings);
  });
  return { findings, syntax };
}

/** `0003_x.sql statement 2 (line 4): DROP TABLE orders [drop-table]. Fix: ...` */
export function formatFinding(f: LintFinding): string {
  const where = `${f.file} statement ${f.statement} (line ${f.line}${f.inDoBlock ? ', in a DO block' : ''})`;
  return `${where}: ${f.change} [${f.rule}]. Fix: ${LINT_RULES[f.rule].fix}`;
}

/**
 * The migration lint at synth: throws on a syntax error (any file) and on destructive or breaking changes in up files
 * that their file does not allow; adds a warning to `scope` per locking finding.
 */
export function checkMigrations(scope: Construct, files: MigrationFile[], prop: string): void {
  const downs = files.filter((f) => f.downFile !== undefined && f.downSql !== undefined).map((f) => ({ file: f.downFile!, sql: f.downSql! }));
  const { findings, syntax } = lintMigrations(files, downs);
  if (syntax.length > 0) {
    throw new Error(`\`${prop}\`: PostgreSQL cannot parse ${syntax.map((p) => `${p.file} line ${p.line}: ${p.message}`).join('; ')}`);
  }

  const problems: string[] = [];
  const needs = new Set<string>();
  for (const f of files) {
    const allows: Record<RuleCategory, string | undefined> = {
      destructive: directive(f.sql, ALLOW_DESTRUCTIVE_DIRECTIVE),
      breaking: directive(f.sql, ALLOW_BREAKING_DIRECTIVE),
      locking: undefined,
    };
    for (const [category, name] of [['destructive', ALLOW_DESTRUCTIVE_DIRECTIVE], ['breaking', ALLOW_BREAKING_DIRECTIVE]] as const) {
      if (allows[category] === '') problems.push(`${f.file}: '-- ${name}' needs a reason after it`);
    }
    for (const finding of findings.filter((x) => x.file === f.file)) {
      const category = LINT_RULES[finding.rule].category;
      if (category === 'locking') {
        Annotations.of(scope).addWarningV2(`cdk-rollback:lint:${finding.rule}`, `${prop}: ${formatFinding(finding)}`);
      } else if (allows[category] === undefined) {
        problems.push(formatFinding(finding));
        needs.add(category === 'destructive' ? `destructive changes with '-- ${ALLOW_DESTRUCTIVE_DIRECTIVE} <reason>'`
          : `changes that break the previous release with '-- ${ALLOW_BREAKING_DIRECTIVE} <reason>'`);
      }
    }
  }
  if (problems.length > 0) {
    const allow = needs.size > 0 ? ` Or let a file through: ${[...needs].join(', ')} in the file.` : '';
    throw new Error(`\`${prop}\` fails the migration lint: ${problems.join('; ')}.${allow}`);
  }
}
