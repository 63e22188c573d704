/**
 * DatabaseMigrations custom resource handler (Provider framework onEvent; runs in the user's VPC).
 *
 * Decides from intent (OldResourceProperties and the stack status read with DescribeStacks), never from the files
 * on disk alone:
 * - Create, or an Update with a new Fingerprint while the stack moves forward: the migration files on disk must be
 *   the requested ones (else the deploy fails, naming both fingerprints); applies the pending migrations with the
 *   shared runner. A failing migration throws, so the deploy fails and CloudFormation rolls the stack back.
 * - Update with an unchanged Fingerprint: verification only (files, checksums of applied migrations, a dry run);
 *   nothing is applied, so an operator's `cdk-rollback db down` stands.
 * - The Update CloudFormation sends with the old properties during a stack rollback (UPDATE_ROLLBACK_IN_PROGRESS):
 *   re-runs nothing, runs no down migration (down is explicit: `cdk-rollback db down`) and never throws.
 * - Delete leaves the database alone.
 *
 * The Lambda entry is `handler`: it also serves operator requests (`{ "cdkRollbackAction": ... }`, see ./operator)
 * that `cdk-rollback db history|migrate|down --stack` sends with lambda:InvokeFunction.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { connect } from './connect';
import { migrationsFingerprint, readMigrations } from '../shared/migrations-folder';
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

/** Clients; tests replace them. */
export const clients = {
  // The runner lives in a VPC: a CloudFormation API it cannot reach must fail fast, not hang until the Lambda timeout.
  cloudformation: (): CloudFormationClient => new CloudFormationClient({ maxAttempts: 3, requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 } }),
};

type StackPhase = 'rollback' | 'forward' | 'unknown';

/** `rollback` while CloudFormation rolls the stack back (the Update then carries the old properties). */
async function stackPhase(stackId: string): Promise<StackPhase> {
  try {
    const out = await clients.cloudformation().send(new DescribeStacksCommand({ StackName: stackId }));
    const status = out.Stacks?.[0]?.StackStatus ?? '';
    log('info', 'stack status', { status });
    return status.endsWith('ROLLBACK_IN_PROGRESS') ? 'rollback' : 'forward';
  } catch (e) {
    log('warn', 'could not read the stack status (does the runner reach the CloudFormation API? see README, Networking)', { error: String(e) });
    return 'unknown';
  }
}

function mismatch(dir: string, onDisk: string, requested: string): Error {
  return new Error(
    `the migrations in ${dir} (fingerprint ${onDisk.slice(0, 12)}) are not the ones requested (Fingerprint ${requested.slice(0, 12)}): ` +
    'the runner holds other migration files than the template asks for, so nothing was applied; deploy again, and check that ' +
    'the migrations layer of the runner function was updated with the template');
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
  const data = (applied: number, action: 'migrate' | 'verify' | 'rollback') =>
    ({ AppliedCount: String(applied), LatestVersion: p.LatestVersion, MigrationCount: p.MigrationCount, Action: action });
  const rollbackResponse = (extra: Record<string, unknown> = {}): OnEventResponse => {
    log('info',
      'stack rollback: the Update carries the previous migrations; re-running nothing and running no down migration ' +
      '(revert the schema explicitly with `cdk-rollback db down`, or restore the pre-migration snapshot)',
      { requestedFingerprint: p.Fingerprint, ...extra });
    return { PhysicalResourceId: physicalId, Data: data(0, 'rollback') };
  };

  if (event.RequestType === 'Update') {
    const old = event.OldResourceProperties as Partial<MigrationsProperties>;
    if (old.Fingerprint === p.Fingerprint && old.ClusterIdentifier === p.ClusterIdentifier) {
      return verifyOnly(event, dir, physicalId, data(0, 'verify'));
    }
    const phase = await stackPhase(event.StackId);
    if (phase === 'rollback') return rollbackResponse({ from: old.LatestVersion, to: p.LatestVersion });
    const onDisk = migrationsFingerprint(readMigrations(dir));
    if (onDisk !== p.Fingerprint) {
      // Without the stack status: the runner holding exactly the files of the OldResourceProperties is what a
      // rollback looks like (CloudFormation rolls the migrations resource back before the runner and its layer).
      if (phase === 'unknown' && onDisk === old.Fingerprint) {
        log('error', 'the stack status is unknown and the runner holds the files of the old properties: taking this for a stack ' +
          'rollback and applying nothing. If it was not one, deploy again once the runner reaches the CloudFormation API', { deployedFingerprint: onDisk });
        return rollbackResponse({ deployedFingerprint: onDisk });
      }
      throw mismatch(dir, onDisk, p.Fingerprint);
    }
  } else {
    const onDisk = migrationsFingerprint(readMigrations(dir));
    if (onDisk !== p.Fingerprint) throw mismatch(dir, onDisk, p.Fingerprint);
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
    return { PhysicalResourceId: physicalId, Data: data(res.applied.length, 'migrate') };
  } catch (e) {
    log('error', 'migration failed', { error: (e as Error).message });
    throw e;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Update with an unchanged Fingerprint: checks that the files are the requested ones and that the applied
 * migrations still match them (a dry run: no lock, no history table created, nothing applied). Pending migrations
 * (an operator's `db down`) are reported, never applied. A failed check fails the deploy, except during a stack
 * rollback, which never throws.
 */
async function verifyOnly(event: OnEventRequest, dir: string, physicalId: string, data: Record<string, string>): Promise<OnEventResponse> {
  const p = event.ResourceProperties;
  log('info', 'Update with the same migrations (Fingerprint unchanged): verification only, nothing is applied');
  try {
    const onDisk = migrationsFingerprint(readMigrations(dir));
    if (onDisk !== p.Fingerprint) throw mismatch(dir, onDisk, p.Fingerprint);
    const client = await connect();
    try {
      const plan = await migrate({ client }, { dir, dryRun: true, log: (line) => log('info', line) });
      if (plan.applied.length > 0) {
        log('warn', `${plan.applied.length} migration(s) are not applied (reverted with \`cdk-rollback db down\`?): left as they are; ` +
          'an Update with unchanged migrations never applies any (`cdk-rollback db migrate` applies them)',
        { pending: plan.applied.map((a) => `${a.version}_${a.name}`) });
      }
      return { PhysicalResourceId: physicalId, Data: { ...data, PendingCount: String(plan.applied.length) } };
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (e) {
    if ((await stackPhase(event.StackId)) === 'rollback') {
      log('error', 'verification failed during a stack rollback: logged, the rollback continues', { error: String(e) });
      return { PhysicalResourceId: physicalId, Data: data };
    }
    throw e;
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
