/**
 * DatabaseMigrations custom resource handler (Provider framework onEvent; runs in the user's VPC).
 *
 * Create/Update: reads the credentials from Secrets Manager, connects with TLS and applies the pending migrations
 * of MIGRATIONS_DIR (the migrations layer, /opt) with the shared runner. A failing migration throws, so the deploy
 * fails and CloudFormation rolls the stack back.
 * The Update CloudFormation sends with the old properties during that rollback re-runs nothing and runs no down
 * migration (down is explicit: `cdk-rollback db down`). Delete leaves the database alone.
 *
 * The Lambda entry is `handler`: it also serves operator requests (`{ "cdkRollbackAction": ... }`, see ./operator)
 * that `cdk-rollback db history|migrate|down --stack` sends with lambda:InvokeFunction.
 */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { connect } from './connect';
import { compareVersions, migrationsFingerprint, readMigrations } from './folder';
import { handleOperatorRequest, isOperatorRequest, OperatorResponse } from './operator';
import { migrate } from './runner';

export interface MigrationsProperties {
  ClusterIdentifier: string;
  Fingerprint: string;
  MigrationCount: string;
  LatestVersion: string;
  SnapshotIdentifier?: string;
}

export type OnEventRequest = CloudFormationCustomResourceEvent & { ResourceProperties: MigrationsProperties & { ServiceToken: string } };
export interface OnEventResponse { PhysicalResourceId?: string; Data?: Record<string, string> }

function log(level: 'info' | 'warn' | 'error', message: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ level, message, ...extra }));
}

export async function onEvent(event: OnEventRequest): Promise<OnEventResponse> {
  log('info', 'event', { event: { ...event, ResponseURL: '(redacted)' } });
  const physicalId = event.RequestType === 'Create' ? `migrations:${event.ResourceProperties.ClusterIdentifier}` : event.PhysicalResourceId;
  if (event.RequestType === 'Delete') {
    log('info', 'delete: the database, its schema and its migration history are left as they are');
    return { PhysicalResourceId: physicalId };
  }
  const p = event.ResourceProperties;
  const dir = process.env.MIGRATIONS_DIR ?? '/opt';
  const files = readMigrations(dir);
  const onDisk = migrationsFingerprint(files);
  const data = (applied: number) => ({ AppliedCount: String(applied), LatestVersion: p.LatestVersion, MigrationCount: p.MigrationCount });
  if (event.RequestType === 'Update') {
    const old = event.OldResourceProperties as Partial<MigrationsProperties>;
    const backwards = old.LatestVersion !== undefined && /^\d+$/.test(old.LatestVersion) && compareVersions(p.LatestVersion, old.LatestVersion) < 0;
    if (onDisk !== p.Fingerprint || backwards) {
      log('info',
        'stack rollback: the Update carries the previous migrations; re-running nothing and running no down migration ' +
        '(revert the schema explicitly with `cdk-rollback db down`, or restore the pre-migration snapshot)',
        { requestedFingerprint: p.Fingerprint, deployedFingerprint: onDisk, from: old.LatestVersion, to: p.LatestVersion });
      return { PhysicalResourceId: physicalId, Data: data(0) };
    }
  } else if (onDisk !== p.Fingerprint) {
    throw new Error(`the migrations in ${dir} (fingerprint ${onDisk.slice(0, 12)}) are not the ones requested (${p.Fingerprint.slice(0, 12)})`);
  }
  const client = await connect();
  try {
    const res = await migrate({ client }, {
      dir,
      snapshotIdentifier: p.SnapshotIdentifier || undefined,
      lockWaitMs: Number(process.env.LOCK_WAIT_MS ?? 120_000),
      lockTimeout: process.env.LOCK_TIMEOUT,
      statementTimeout: process.env.STATEMENT_TIMEOUT,
      log: (line) => log('info', line),
    });
    log('info', 'migrations done', { applied: res.applied.map((a) => `${a.version}_${a.name}`), alreadyApplied: res.alreadyApplied });
    return { PhysicalResourceId: physicalId, Data: data(res.applied.length) };
  } catch (e) {
    log('error', 'migration failed', { error: (e as Error).message });
    throw e;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The Lambda entry: operator requests (`cdkRollbackAction`) go to ./operator, CloudFormation events to `onEvent`. */
export async function handler(event: OnEventRequest | Record<string, unknown>): Promise<OnEventResponse | OperatorResponse> {
  if (isOperatorRequest(event)) {
    log('info', 'operator request', { request: event });
    return handleOperatorRequest(event, (line) => log('info', line));
  }
  return onEvent(event as OnEventRequest);
}
