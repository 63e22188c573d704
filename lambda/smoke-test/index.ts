/**
 * Built-in BeforeAllowTraffic hook of SafeLambdaApi: invokes the NEW version with an
 * API-Gateway-shaped request and reports the result to CodeDeploy, within a bounded deadline
 * (SMOKE_TIMEOUT_MS) far below CodeDeploy's one-hour hook limit.
 *
 * The version under test is read from the deployment itself (ListDeploymentTargets /
 * GetDeploymentTarget), so the hook also tests the right version in a deployment started by
 * `cdk-rollback api promote`.
 *
 * Every path reports within the function's own timeout: each call is bounded by the time the Lambda
 * has left (context.getRemainingTimeInMillis), minus a reserve kept for the report itself. A hung
 * lookup or invoke is reported as Failed (CodeDeploy then rolls back); only a failure to report
 * throws, so that Lambda retries the hook.
 */
import {
  CodeDeployClient,
  GetDeploymentTargetCommand,
  LifecycleEventStatus,
  ListDeploymentTargetsCommand,
  PutLifecycleEventHookExecutionStatusCommand,
} from '@aws-sdk/client-codedeploy';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { log } from '../alias-deployment/log';

export interface HookEvent {
  readonly DeploymentId: string;
  readonly LifecycleEventHookExecutionId: string;
}

export interface SmokeConfig {
  readonly functionName: string;
  readonly path: string;
  readonly method: string;
  readonly expectedStatus: number;
  /** '1.0' (REST API) or '2.0' (HTTP API). */
  readonly payloadFormat: string;
  readonly timeoutMs: number;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): SmokeConfig {
  const need = (k: string) => {
    const v = env[k];
    if (!v) throw new Error(`environment variable ${k} is missing`);
    return v;
  };
  return {
    functionName: need('FUNCTION_NAME'),
    path: need('SMOKE_PATH'),
    method: env.SMOKE_METHOD ?? 'GET',
    expectedStatus: Number(env.SMOKE_EXPECTED_STATUS ?? '200'),
    payloadFormat: env.PAYLOAD_FORMAT ?? '1.0',
    timeoutMs: Number(env.SMOKE_TIMEOUT_MS ?? '30000'),
  };
}

/** A minimal API Gateway proxy event for `method path` (payload format 1.0 or 2.0). */
export function apiGatewayEvent(cfg: SmokeConfig): Record<string, unknown> {
  const [rawPath, rawQuery = ''] = cfg.path.split('?', 2);
  const query = Object.fromEntries(new URLSearchParams(rawQuery));
  const headers = { 'user-agent': 'cdk-rollback-smoke-test', 'x-cdk-rollback-smoke-test': 'true' };
  if (cfg.payloadFormat === '2.0') {
    return {
      version: '2.0',
      routeKey: '$default',
      rawPath,
      rawQueryString: rawQuery,
      headers,
      queryStringParameters: rawQuery ? query : undefined,
      requestContext: {
        http: { method: cfg.method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: headers['user-agent'] },
        requestId: 'cdk-rollback-smoke-test',
        routeKey: '$default',
        stage: '$default',
      },
      isBase64Encoded: false,
    };
  }
  return {
    resource: '/{proxy+}',
    path: rawPath,
    httpMethod: cfg.method,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    queryStringParameters: rawQuery ? query : null,
    pathParameters: { proxy: rawPath.replace(/^\//, '') },
    requestContext: { httpMethod: cfg.method, path: rawPath, requestId: 'cdk-rollback-smoke-test', stage: 'smoke-test' },
    body: null,
    isBase64Encoded: false,
  };
}

/** A TimeoutError once `ms` have passed. */
function timeoutError(what: string, ms: number): Error {
  return Object.assign(new Error(`${what}: no answer within ${Math.max(0, Math.round(ms))} ms`), { name: 'TimeoutError' });
}

/**
 * Runs `call` with an abort signal and rejects with a TimeoutError after `ms`, even where the SDK would
 * not honour the signal.
 */
export async function withDeadline<T>(what: string, ms: number, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(timeoutError(what, ms));
    }, Math.max(0, ms));
  });
  try {
    return await Promise.race([call(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** The version a Lambda deployment shifts to; each call is bounded by `deadline` (epoch ms). */
export async function targetVersion(cd: CodeDeployClient, deploymentId: string, deadline = Number.POSITIVE_INFINITY): Promise<{ functionName?: string; version: string }> {
  const left = () => deadline - Date.now();
  const targets = await withDeadline(`ListDeploymentTargets of ${deploymentId}`, left(),
    (abortSignal) => cd.send(new ListDeploymentTargetsCommand({ deploymentId }), { abortSignal }));
  const targetId = targets.targetIds?.[0];
  if (!targetId) throw new Error(`deployment ${deploymentId} has no target`);
  const t = await withDeadline(`GetDeploymentTarget ${targetId} of ${deploymentId}`, left(),
    (abortSignal) => cd.send(new GetDeploymentTargetCommand({ deploymentId, targetId }), { abortSignal }));
  const info = t.deploymentTarget?.lambdaTarget?.lambdaFunctionInfo;
  if (!info?.targetVersion) throw new Error(`deployment ${deploymentId} target ${targetId} names no Lambda target version`);
  return { functionName: info.functionName, version: info.targetVersion };
}

/** Runs the smoke test; returns the reason it failed, or undefined when it passed. */
export async function smokeTest(lambda: LambdaClient, cfg: SmokeConfig, version: string): Promise<string | undefined> {
  let out;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), cfg.timeoutMs);
  try {
    // The race bounds the wait even where the SDK would not honour the abort signal.
    out = await Promise.race([
      lambda.send(new InvokeCommand({
        FunctionName: cfg.functionName,
        Qualifier: version,
        Payload: Buffer.from(JSON.stringify(apiGatewayEvent(cfg))),
      }), { abortSignal: deadline.signal }),
      new Promise<never>((_, reject) => deadline.signal.addEventListener('abort', () => {
        const err = new Error('deadline');
        err.name = 'TimeoutError';
        reject(err);
      })),
    ]);
  } catch (e) {
    const err = e as Error;
    return err.name === 'TimeoutError' || err.name === 'AbortError'
      ? `no answer from version ${version} within ${cfg.timeoutMs} ms`
      : `invoking version ${version} failed: ${err.name}: ${err.message}`;
  } finally {
    clearTimeout(timer);
  }
  const text = out.Payload ? Buffer.from(out.Payload).toString('utf8') : '';
  if (out.FunctionError) return `version ${version} threw (${out.FunctionError}): ${text.slice(0, 500)}`;
  let status: unknown;
  try {
    status = (JSON.parse(text) as { statusCode?: unknown }).statusCode;
  } catch {
    return `version ${version} returned no JSON: ${text.slice(0, 200)}`;
  }
  if (Number(status) !== cfg.expectedStatus) {
    return `${cfg.method} ${cfg.path} on version ${version} returned status ${String(status)}, expected ${cfg.expectedStatus}`;
  }
  return undefined;
}

/** The part of the Lambda context the hook uses. */
export interface HookContext {
  getRemainingTimeInMillis(): number;
}

/** Time kept for reporting the result: a quarter of what is left, at most 10 s. */
const REPORT_RESERVE_MAX_MS = 10_000;
/** Kept unused at the very end, so the report's own deadline fires before Lambda kills the function. */
const FINAL_MARGIN_MS = 200;

export async function handler(event: HookEvent, context?: HookContext): Promise<{ status: LifecycleEventStatus; reason?: string }> {
  const cfg = configFromEnv();
  // Without a context (a direct call), assume the timeout SafeLambdaApi gives the function: the smoke timeout + 30 s.
  const remaining = context?.getRemainingTimeInMillis() ?? cfg.timeoutMs + 30_000;
  const start = Date.now();
  const end = start + remaining - FINAL_MARGIN_MS;
  const workDeadline = end - Math.min(REPORT_RESERVE_MAX_MS, remaining / 4);
  const cd = new CodeDeployClient({});
  let reason: string | undefined;
  let version = 'unknown';
  try {
    version = (await targetVersion(cd, event.DeploymentId, workDeadline)).version;
    const left = workDeadline - Date.now();
    if (left <= 0) throw timeoutError('finding the version under test', workDeadline - start);
    reason = await smokeTest(new LambdaClient({}), { ...cfg, timeoutMs: Math.min(cfg.timeoutMs, Math.floor(left)) }, version);
  } catch (e) {
    reason = `smoke test could not run: ${(e as Error).message}`;
  }
  const status = reason ? LifecycleEventStatus.FAILED : LifecycleEventStatus.SUCCEEDED;
  log(reason ? 'error' : 'info', 'smoke test result', { deploymentId: event.DeploymentId, version, status, reason });
  await withDeadline('PutLifecycleEventHookExecutionStatus', end - Date.now(), (abortSignal) => cd.send(new PutLifecycleEventHookExecutionStatusCommand({
    deploymentId: event.DeploymentId,
    lifecycleEventHookExecutionId: event.LifecycleEventHookExecutionId,
    status,
  }), { abortSignal }));
  return { status, reason };
}
