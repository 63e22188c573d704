/**
 * Operator requests to the DatabaseMigrations runner, sent by `cdk-rollback db history|migrate|down --stack` with
 * lambda:InvokeFunction (RequestResponse). They are told apart from CloudFormation events by `cdkRollbackAction`:
 *
 *   { "cdkRollbackAction": "history" }
 *   { "cdkRollbackAction": "plan" }                       pending migrations and checksum drift, changes nothing
 *   { "cdkRollbackAction": "migrate", "dryRun": false }   applies the pending deployed migrations
 *   { "cdkRollbackAction": "down", "to": "0002", "dryRun": true }
 *
 * The request names versions only: the runner runs nothing but the migration files deployed with it (its layer).
 * Anything else in the request is rejected. Failures are thrown, so the caller gets a FunctionError whose
 * `errorType` says what happened: `InvalidRequest` (the request), `Refused` (a safety check; nothing changed),
 * anything else (a failure).
 */
import { compareVersions, MigrationFile, migrationsFingerprint, readMigrations } from '../shared/migrations-folder';
import { connect } from './connect';
import { down, history, HistoryRow, migrate } from './runner';

export const OPERATOR_ACTION_KEY = 'cdkRollbackAction';
export const OPERATOR_ACTIONS = ['history', 'plan', 'migrate', 'down'] as const;
export type OperatorAction = typeof OPERATOR_ACTIONS[number];

export interface OperatorRequest {
  readonly cdkRollbackAction: OperatorAction;
  /** `down` only: revert every applied migration above this version (digits). */
  readonly to?: string;
  /** `migrate` and `down`: plan only, change nothing. */
  readonly dryRun?: boolean;
}

export interface DeployedMigrations {
  readonly fingerprint: string;
  readonly migrationCount: number;
  readonly latestVersion: string;
}

export interface PlanResult {
  readonly applied: HistoryRow[];
  readonly pending: { version: string; name: string }[];
  /** Applied migrations whose deployed file no longer has the checksum recorded when it was applied. */
  readonly drift: { version: string; name: string; appliedChecksum: string; fileChecksum: string }[];
  /** Applied versions that have no file in the deployed migrations. */
  readonly unknown: { version: string; name: string }[];
}

export type OperatorResponse = { action: OperatorAction; deployed: DeployedMigrations; log: string[] } & Record<string, unknown>;

class OperatorError extends Error {
  constructor(name: 'InvalidRequest' | 'Refused', message: string) {
    super(message);
    this.name = name;
  }
}

/** True for an operator request (it carries `cdkRollbackAction`), false for a CloudFormation event. */
export function isOperatorRequest(event: unknown): boolean {
  return typeof event === 'object' && event !== null && !Array.isArray(event) && OPERATOR_ACTION_KEY in event;
}

const ALLOWED_KEYS: Record<OperatorAction, string[]> = {
  history: [OPERATOR_ACTION_KEY],
  plan: [OPERATOR_ACTION_KEY],
  migrate: [OPERATOR_ACTION_KEY, 'dryRun'],
  down: [OPERATOR_ACTION_KEY, 'to', 'dryRun'],
};

/** Checks an operator request strictly: the action, its own keys and nothing else, versions as digits. */
export function parseOperatorRequest(event: unknown): OperatorRequest {
  const bad = (m: string) => new OperatorError('InvalidRequest', m);
  if (typeof event !== 'object' || event === null || Array.isArray(event)) throw bad('an operator request must be a JSON object');
  const e = event as Record<string, unknown>;
  const action = e[OPERATOR_ACTION_KEY];
  if (typeof action !== 'string' || !(OPERATOR_ACTIONS as readonly string[]).includes(action)) {
    throw bad(`\`${OPERATOR_ACTION_KEY}\` must be one of ${OPERATOR_ACTIONS.join(', ')}, got: ${JSON.stringify(action)}`);
  }
  const a = action as OperatorAction;
  const extra = Object.keys(e).filter((k) => !ALLOWED_KEYS[a].includes(k));
  if (extra.length > 0) {
    throw bad(`\`${a}\` accepts only ${ALLOWED_KEYS[a].map((k) => `\`${k}\``).join(', ')}, got: ${extra.map((k) => `\`${k}\``).join(', ')} ` +
      '(the runner runs only the migration files deployed with it, never SQL from a request)');
  }
  if (e.dryRun !== undefined && typeof e.dryRun !== 'boolean') throw bad(`\`dryRun\` must be true or false, got: ${JSON.stringify(e.dryRun)}`);
  let to: string | undefined;
  if (a === 'down') {
    const raw = e.to;
    if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) to = String(raw);
    else if (typeof raw === 'string' && /^\d{1,30}$/.test(raw)) to = raw;
    else throw bad(`\`to\` must be a migration version (digits), got: ${JSON.stringify(raw)}`);
  }
  return { cdkRollbackAction: a, ...(to !== undefined ? { to } : {}), ...(e.dryRun !== undefined ? { dryRun: e.dryRun as boolean } : {}) };
}

/** Pending migrations, checksum drift and applied versions without a file; never throws on drift. */
export function planMigrations(files: MigrationFile[], applied: HistoryRow[]): PlanResult {
  const key = (v: string) => BigInt(v).toString();
  const fileByVersion = new Map(files.map((f) => [key(f.version), f]));
  const appliedVersions = new Set(applied.map((r) => key(r.version)));
  const drift: PlanResult['drift'] = [];
  const unknown: PlanResult['unknown'] = [];
  for (const r of applied) {
    const f = fileByVersion.get(key(r.version));
    if (!f) unknown.push({ version: r.version, name: r.name });
    else if (f.checksum !== r.checksum) drift.push({ version: r.version, name: r.name, appliedChecksum: r.checksum, fileChecksum: f.checksum });
  }
  const pending = files.filter((f) => !appliedVersions.has(key(f.version))).map((f) => ({ version: f.version, name: f.name }));
  return { applied, pending, drift, unknown };
}

/** Errors of the runner that are safety refusals: nothing was changed. */
const REFUSALS = [/^cannot revert to .*: no down file/, /^checksum of applied migration .* changed/, /is pending but the newer migration/];

export async function handleOperatorRequest(event: unknown, log: (line: string) => void): Promise<OperatorResponse> {
  const req = parseOperatorRequest(event);
  const dir = process.env.MIGRATIONS_DIR ?? '/opt';
  const files = readMigrations(dir);
  const deployed: DeployedMigrations = {
    fingerprint: migrationsFingerprint(files),
    migrationCount: files.length,
    latestVersion: files[files.length - 1].version,
  };
  const lines: string[] = [];
  const note = (line: string) => {
    lines.push(line);
    log(line);
  };
  const options = {
    dir,
    lockWaitMs: Number(process.env.LOCK_WAIT_MS ?? 120_000),
    lockTimeout: process.env.LOCK_TIMEOUT,
    statementTimeout: process.env.STATEMENT_TIMEOUT,
    log: note,
  };
  const client = await connect();
  try {
    const base = { action: req.cdkRollbackAction, deployed };
    switch (req.cdkRollbackAction) {
      case 'history':
        return { ...base, migrations: await history({ client }), log: lines };
      case 'plan':
        return { ...base, ...planMigrations(files, await history({ client })), log: lines };
      case 'migrate': {
        const r = await migrate({ client }, { ...options, dryRun: req.dryRun });
        return { ...base, ...r, log: lines };
      }
      case 'down': {
        if (!req.dryRun) {
          const applied = await history({ client });
          const latest = applied[applied.length - 1];
          if (latest && compareVersions(latest.version, req.to!) > 0) note(`reverting the migrations above ${req.to} (latest applied ${latest.version})`);
        }
        const r = await down({ client }, { ...options, toVersion: req.to!, dryRun: req.dryRun });
        return { ...base, ...r, log: lines };
      }
    }
  } catch (e) {
    const message = (e as Error).message ?? String(e);
    if (!(e instanceof OperatorError) && REFUSALS.some((re) => re.test(message))) throw new OperatorError('Refused', message);
    throw e;
  } finally {
    await client.end().catch(() => undefined);
  }
}
