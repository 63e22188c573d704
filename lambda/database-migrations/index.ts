/**
 * DatabaseMigrations custom resource handler (Provider framework onEvent; runs in the user's VPC).
 *
 * Create/Update: reads the credentials from Secrets Manager, connects with TLS and applies the pending migrations
 * of MIGRATIONS_DIR (the migrations layer, /opt) with the shared runner. A failing migration throws, so the deploy
 * fails and CloudFormation rolls the stack back.
 * The Update CloudFormation sends with the old properties during that rollback re-runs nothing and runs no down
 * migration (down is explicit: `cdk-rollback db down`). Delete leaves the database alone.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { Client } from 'pg';
import { compareVersions, migrationsFingerprint, readMigrations } from './folder';
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

interface DbSecret { host: string; port?: number | string; username: string; password: string; dbname?: string }

async function connect(): Promise<Client> {
  const secretArn = process.env.SECRET_ARN;
  if (!secretArn) throw new Error('SECRET_ARN is not set');
  const out = await new SecretsManagerClient({}).send(new GetSecretValueCommand({ SecretId: secretArn }));
  const s = JSON.parse(out.SecretString ?? '{}') as DbSecret;
  if (!s.host || !s.username || !s.password) {
    throw new Error(`secret ${secretArn} must hold JSON with host, username and password (the RDS secret format)`);
  }
  const client = new Client({
    host: s.host,
    port: Number(s.port ?? 5432),
    user: s.username,
    password: s.password,
    database: process.env.DATABASE_NAME || s.dbname || 'postgres',
    // Aurora's certificate chain: the Node.js 22 runtime trusts it through NODE_EXTRA_CA_CERTS=/var/runtime/ca-cert.pem.
    ssl: process.env.DATABASE_TLS === 'off' ? false : { rejectUnauthorized: true },
    application_name: 'cdk-rollback-migrations',
    connectionTimeoutMillis: 30_000,
  });
  await client.connect();
  return client;
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
