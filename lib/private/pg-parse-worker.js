'use strict';
// Parses migration files with PostgreSQL's own parser (libpg-query, WebAssembly) for the migration lint.
//
// The WebAssembly module only loads asynchronously while construct constructors are synchronous, so the lint runs this
// file in a child process (`execFileSync(process.execPath, [this file], { input })`). It is plain CommonJS, shipped as
// is (package.json "files"), so the same file runs from a checkout (ts-node, ts-jest) and from the published package.
//
// stdin:  {"module": "<path of libpg-query>", "files": ["<sql>", ...]}
// stdout: [{"stmts": [...]} | {"error": {"message": "...", "position": <0-based byte offset or -1>}}, ...]
//
// Every DoStmt node gets a `cdkRollbackBody` member: {"statements": [{"stmt": <node>, "lineno": <line in the body>}],
// "error"?: "..."}, the SQL statements of its PL/pgSQL body parsed in turn (statements inside a nested DO likewise,
// EXECUTE of a string literal as well).

/** The PL/pgSQL parse mode of an expression that is a whole SQL statement (RAW_PARSE_DEFAULT). */
const SQL_STATEMENT = 0;

/** Parses one SQL statement text found in a PL/pgSQL body; [] when it cannot be parsed (reported by the caller). */
function parseNested(lpq, query, lineno, out) {
  let res;
  try {
    res = lpq.parseSync(query);
  } catch (e) {
    out.push({ error: e.message, lineno });
    return;
  }
  for (const raw of res.stmts || []) {
    if (raw.stmt && raw.stmt.DoStmt) raw.stmt.DoStmt.cdkRollbackBody = parseDoBody(lpq, query);
    out.push({ stmt: raw.stmt, lineno });
  }
}

/** The string of `EXECUTE '<literal>'`, or undefined when the statement is computed. */
function literalOf(lpq, expr) {
  try {
    const res = lpq.parseSync(`SELECT ${expr}`);
    const target = res.stmts[0].stmt.SelectStmt.targetList;
    if (target.length !== 1) return undefined;
    const value = target[0].ResTarget.val;
    return value.A_Const && value.A_Const.sval ? value.A_Const.sval.sval : undefined;
  } catch {
    return undefined;
  }
}

/** Visits a PL/pgSQL tree, parsing every SQL statement in it, in source order. */
function walkPlpgsql(lpq, node, lineno, out) {
  if (Array.isArray(node)) {
    for (const item of node) walkPlpgsql(lpq, item, lineno, out);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const line = typeof node.lineno === 'number' ? node.lineno : lineno;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'PLpgSQL_expr') {
      if (value.parseMode === SQL_STATEMENT) parseNested(lpq, value.query, line, out);
    } else if (key === 'PLpgSQL_stmt_dynexecute') {
      const expr = value.query && value.query.PLpgSQL_expr;
      const sql = expr ? literalOf(lpq, expr.query) : undefined;
      if (sql !== undefined) parseNested(lpq, sql, typeof value.lineno === 'number' ? value.lineno : line, out);
    } else {
      walkPlpgsql(lpq, value, line, out);
    }
  }
}

/** The statements of the PL/pgSQL body of the DO statement `text`. */
function parseDoBody(lpq, text) {
  let fn;
  try {
    fn = lpq.parsePlPgSQLSync(text);
  } catch (e) {
    return { statements: [], error: e.message };
  }
  const statements = [];
  walkPlpgsql(lpq, fn.plpgsql_funcs, 1, statements);
  const bad = statements.find((s) => s.error !== undefined);
  return bad ? { statements: statements.filter((s) => s.error === undefined), error: bad.error, errorLine: bad.lineno }
    : { statements };
}

/** Parses one file; DO bodies (plpgsql, the default language) are parsed too. */
function parseFile(lpq, sql) {
  let res;
  try {
    res = lpq.parseSync(sql);
  } catch (e) {
    const pos = e.sqlDetails && typeof e.sqlDetails.cursorPosition === 'number' ? e.sqlDetails.cursorPosition : -1;
    return { error: { message: e.message, position: pos } };
  }
  const bytes = Buffer.from(sql, 'utf8');
  const stmts = res.stmts || [];
  for (const raw of stmts) {
    const doStmt = raw.stmt && raw.stmt.DoStmt;
    if (!doStmt) continue;
    const language = (doStmt.args || []).map((a) => a.DefElem).find((d) => d && d.defname === 'language');
    if (language && language.arg.String.sval.toLowerCase() !== 'plpgsql') continue;
    const start = raw.stmt_location || 0;
    const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
    doStmt.cdkRollbackBody = parseDoBody(lpq, bytes.subarray(start, end).toString('utf8'));
  }
  return { stmts };
}

module.exports = { parseFile };

if (require.main === module) {
  const chunks = [];
  process.stdin.on('data', (c) => chunks.push(c));
  process.stdin.on('end', () => {
    const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const lpq = require(input.module);
    lpq.loadModule().then(() => {
      process.stdout.write(JSON.stringify(input.files.map((sql) => parseFile(lpq, sql))), () => process.exit(0));
    }).catch((e) => {
      process.stderr.write(`cannot load the PostgreSQL parser: ${e && e.stack ? e.stack : e}\n`);
      process.exit(2);
    });
  });
}
