/**
 * The runner's way to the database: the credentials from Secrets Manager, then a TLS connection.
 *
 * Both hops fail fast with a message that names what the runner's subnets need. Without SDK timeouts a runner in
 * subnets with no route to Secrets Manager (no NAT gateway, no interface endpoint) waits until the Lambda timeout
 * (14 minutes) and the error names nothing.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Client } from 'pg';

/** TCP connect timeout of the AWS SDK calls. Override with SDK_CONNECT_TIMEOUT_MS. */
export const DEFAULT_SDK_CONNECT_TIMEOUT_MS = 3_000;
/** Timeout of one AWS SDK request once connected. Override with SDK_REQUEST_TIMEOUT_MS. */
export const DEFAULT_SDK_REQUEST_TIMEOUT_MS = 10_000;
/** Attempts of each AWS SDK call (the SDK retries timeouts): the worst case stays well under a minute. */
const SDK_MAX_ATTEMPTS = 2;
/** PostgreSQL connect timeout (an Aurora Serverless v2 cluster resuming from zero needs ~15 s). */
const DB_CONNECT_TIMEOUT_MS = 30_000;

function envMs(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

interface DbSecret { host: string; port?: number | string; username: string; password: string; dbname?: string }

/** The Secrets Manager endpoint the SDK calls (the configured one, else the regional public endpoint). */
export function secretsManagerEndpoint(): string {
  const configured = process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER ?? process.env.AWS_ENDPOINT_URL;
  if (configured) return configured;
  const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? '<region>';
  return `https://secretsmanager.${region}.amazonaws.com`;
}

function isNetworkFailure(e: unknown): boolean {
  const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  if (err.$metadata?.httpStatusCode) return false; // the service answered
  return /TimeoutError|RequestTimeout|socket hang up|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN/
    .test(`${err.name ?? ''} ${err.code ?? ''} ${err.message ?? ''}`);
}

/** Reads the database secret; a missing route fails within seconds, naming the endpoint and what reaches it. */
export async function readSecret(secretArn: string): Promise<DbSecret> {
  const connectionTimeout = envMs('SDK_CONNECT_TIMEOUT_MS', DEFAULT_SDK_CONNECT_TIMEOUT_MS);
  const requestTimeout = envMs('SDK_REQUEST_TIMEOUT_MS', DEFAULT_SDK_REQUEST_TIMEOUT_MS);
  const client = new SecretsManagerClient({
    maxAttempts: SDK_MAX_ATTEMPTS,
    // throwOnRequestTimeout: newer SDK versions only log a warning on requestTimeout without it.
    requestHandler: { connectionTimeout, requestTimeout, throwOnRequestTimeout: true },
  });
  let out;
  try {
    out = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
  } catch (e) {
    if (!isNetworkFailure(e)) throw e;
    const err = e as Error;
    throw new Error(
      `could not reach Secrets Manager at ${secretsManagerEndpoint()} (connect timeout ${connectionTimeout} ms, request timeout ` +
      `${requestTimeout} ms, ${SDK_MAX_ATTEMPTS} attempts: ${err.name}: ${err.message}). The runner's subnets need a route to it: ` +
      'a NAT gateway (PRIVATE_WITH_EGRESS subnets) or a Secrets Manager interface VPC endpoint with private DNS ' +
      '(ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER) in those subnets, whose security group allows TCP 443 from the runner');
  } finally {
    client.destroy();
  }
  const s = JSON.parse(out.SecretString ?? '{}') as DbSecret;
  if (!s.host || !s.username || !s.password) {
    throw new Error(`secret ${secretArn} must hold JSON with host, username and password (the RDS secret format)`);
  }
  return s;
}

/** Connects to the database named by SECRET_ARN (and DATABASE_NAME); TLS unless DATABASE_TLS=off. */
export async function connect(): Promise<Client> {
  const secretArn = process.env.SECRET_ARN;
  if (!secretArn) throw new Error('SECRET_ARN is not set');
  const s = await readSecret(secretArn);
  const port = Number(s.port ?? 5432);
  const client = new Client({
    host: s.host,
    port,
    user: s.username,
    password: s.password,
    database: process.env.DATABASE_NAME || s.dbname || 'postgres',
    // Aurora's certificate chain: the Node.js 22 runtime trusts it through NODE_EXTRA_CA_CERTS=/var/runtime/ca-cert.pem.
    ssl: process.env.DATABASE_TLS === 'off' ? false : { rejectUnauthorized: true },
    application_name: 'cdk-rollback-migrations',
    connectionTimeoutMillis: envMs('DB_CONNECT_TIMEOUT_MS', DB_CONNECT_TIMEOUT_MS),
  });
  try {
    await client.connect();
  } catch (e) {
    const err = e as Error & { code?: string };
    if (isNetworkFailure(e) || /timeout/i.test(err.message)) {
      throw new Error(
        `could not connect to the database at ${s.host}:${port} (${err.message}): the runner's security group must be allowed ` +
        'into the cluster\'s security group on that port and the runner\'s subnets must route to the cluster\'s subnets');
    }
    throw e;
  }
  return client;
}
