/**
 * Benchmark: how fast `cdk-rollback api rollback` and `site rollback` flip, under a network model of 50 ms per
 * request. A loopback proxy in front of moto_server (and one in front of the KeyValueStore stand-in) holds every
 * request 50 ms before forwarding it and records when it arrived and when its answer left. Per run:
 * - time-to-flip: from spawning `node dist/bin/cdk-rollback.js` to the proxy receiving the flip request
 *   (Lambda UpdateAlias / KVS UpdateKeys);
 * - total wall time: spawn to exit;
 * - round trips before the flip: the sequential depth of the requests sent before it (a request is one level
 *   deeper than the deepest request that was answered before it was sent).
 * Node start-up (`node -e 0`) is timed in the same runs, interleaved. Explicit targets (`--function`, `--kvs
 * --bucket --distribution`): `--stack` adds one round trip for the stack.
 */
import { spawn } from 'child_process';
import * as http from 'http';
import { LambdaClient, UpdateAliasCommand } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { KVS_ARN } from '../test/fixtures/cli/aws';
import { startKvsServer } from '../test/fixtures/cli/kvs-server';
import { startMotoServer } from '../test/helpers/moto';
import { builtCli, cliChildEnv, pointSdkAtMoto, startForwardingProxy } from './cli-harness';
import { createRollbackTargets, resetSiteHistory } from './rollback-targets';

const RUNS = 7;
/** Modelled network latency, added to every request. */
const LATENCY_MS = 50;
const TARGET_ROUND_TRIPS = 3;
const TARGET_SLACK_MS = 100;

interface Recorded { readonly op: string; readonly start: number; end: number }

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Names the AWS operation of a request (enough to tell the flip and count the rest). */
function operation(req: http.IncomingMessage, body: string): string {
  const scope = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(String(req.headers.authorization ?? ''));
  const service = scope?.[1] ?? 'cloudfront-keyvaluestore';
  const target = req.headers['x-amz-target'];
  if (typeof target === 'string') return `${service} ${target.split('.').pop()}`;
  const action = /(?:^|&)Action=([^&]+)/.exec(body)?.[1];
  if (action) return `${service} ${action}`;
  const p = (req.url ?? '').split('?')[0];
  const m = req.method ?? '';
  if (/\/key-value-stores\//.test(p)) {
    if (/\/keys$/.test(p)) return `kvs ${m === 'POST' ? 'UpdateKeys' : 'ListKeys'}`;
    if (/\/keys\//.test(p)) return `kvs ${m === 'GET' ? 'GetKey' : 'PutKey'}`;
    return 'kvs DescribeKeyValueStore';
  }
  if (service === 'lambda' && /\/aliases\//.test(p)) return `lambda ${m === 'PUT' ? 'UpdateAlias' : 'GetAlias'}`;
  if (service === 'lambda' && /\/configuration$/.test(p)) return 'lambda GetFunctionConfiguration';
  if (service === 'lambda') return 'lambda GetFunction';
  if (service === 's3') return `s3 ${m === 'GET' ? (/tagging/.test(req.url ?? '') ? 'GetBucketTagging' : 'GetObject') : 'PutObject'}`;
  if (service === 'cloudfront') return `cloudfront ${m === 'POST' ? 'CreateInvalidation' : 'GetInvalidation'}`;
  return `${service} ${m} ${p}`;
}

/** A loopback proxy that holds each request LATENCY_MS before forwarding it, and records it. */
async function startDelayProxy(target: string, log: Recorded[]): Promise<{ endpoint: string; close(): Promise<void> }> {
  const { server, endpoint } = await startForwardingProxy(target, (req, body, forward) => {
    const rec: Recorded = { op: operation(req, body.toString()), start: now(), end: Infinity };
    log.push(rec);
    setTimeout(() => forward(() => { rec.end = now(); }), LATENCY_MS);
  });
  server.keepAliveTimeout = 10_000;
  return {
    endpoint,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

function timeRun(args: string[], env: NodeJS.ProcessEnv): Promise<{ t0: number; ms: number; code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ t0, ms: now() - t0, code: code ?? -1, stderr }));
  });
}

/** Sequential depth of every request: 1 + the deepest request answered before it was sent. */
export function depths(log: readonly Recorded[]): number[] {
  const sorted = log.map((r, i) => ({ r, i })).sort((a, b) => a.r.start - b.r.start);
  const depth: number[] = new Array(log.length).fill(1);
  for (const { r, i } of sorted) {
    for (const { r: q, i: j } of sorted) if (q.end <= r.start) depth[i] = Math.max(depth[i], depth[j] + 1);
  }
  return depth;
}

interface Measure { first: number[]; flip: number[]; total: number[]; rounds: number[]; before: string[]; after: string[] }

function analyse(log: Recorded[], t0: number, flipOp: string, m: Measure): void {
  const flipIndex = log.findIndex((r) => r.op === flipOp);
  if (flipIndex < 0) throw new Error(`no ${flipOp} request was seen: ${log.map((r) => r.op).join(', ')}`);
  const flip = log[flipIndex];
  const d = depths(log);
  m.flip.push(flip.start - t0);
  m.first.push(Math.min(...log.map((r) => r.start)) - t0);
  m.rounds.push(d[flipIndex] - 1);
  m.before = log.filter((r) => r.start < flip.start).map((r) => `${r.op}@${d[log.indexOf(r)]}`);
  m.after = log.filter((r) => r.start > flip.start).map((r) => r.op);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x: number) => `${Math.round(x)} ms`;
const range = (xs: number[]) => `${ms(median(xs))} (${ms(Math.min(...xs))}–${ms(Math.max(...xs))})`;

function grouped(ops: string[]): string {
  const byDepth = new Map<string, string[]>();
  for (const o of ops) {
    const [op, depth] = o.split('@');
    byDepth.set(depth, [...(byDepth.get(depth) ?? []), op]);
  }
  return [...byDepth].sort(([a], [b]) => Number(a) - Number(b)).map(([depth, list]) => `${depth}: ${list.join(', ')}`).join(' · ');
}

export async function run(): Promise<string> {
  const { cli, dnsShim } = builtCli();

  const moto = await startMotoServer();
  const kvs = await startKvsServer();
  const log: Recorded[] = [];
  const motoProxy = await startDelayProxy(moto.endpoint, log);
  const kvsProxy = await startDelayProxy(kvs.endpoint, log);
  const restoreEnv = pointSdkAtMoto(moto.endpoint);
  try {
    // Set-up goes straight to moto (not through the proxies).
    const dist = await createRollbackTargets();
    const childEnv: NodeJS.ProcessEnv = { ...cliChildEnv(motoProxy.endpoint, kvsProxy.endpoint), NODE_OPTIONS: `--require ${dnsShim}` };
    const lambda = new LambdaClient({});
    const s3 = new S3Client({});
    const node: number[] = [];
    const api: Measure = { first: [], flip: [], total: [], rounds: [], before: [], after: [] };
    const site: Measure = { first: [], flip: [], total: [], rounds: [], before: [], after: [] };

    // Run 0 warms moto up (it imports a service's backend on its first request) and is not counted.
    for (let i = 0; i <= RUNS; i++) {
      const n = await timeRun(['-e', '0'], childEnv);

      await lambda.send(new UpdateAliasCommand({ FunctionName: 'orders', Name: 'live', FunctionVersion: '3', RoutingConfig: { AdditionalVersionWeights: {} } }));
      log.length = 0;
      const a = await timeRun([cli, 'api', 'rollback', '--function', 'orders', '--yes'], childEnv);
      if (a.code !== 0) throw new Error(`api rollback failed (${a.code}): ${a.stderr}`);
      const apiLog = [...log];

      kvs.stores.set(KVS_ARN, new Map([['active', 'r3'], ['previous', 'r2']]));
      await resetSiteHistory(s3);
      log.length = 0;
      const s = await timeRun([cli, 'site', 'rollback', '--kvs', KVS_ARN, '--bucket', 'bench-site', '--distribution', dist, '--yes'], childEnv);
      if (s.code !== 0) throw new Error(`site rollback failed (${s.code}): ${s.stderr}`);
      const siteLog = [...log];
      if (i === 0) continue;
      node.push(n.ms);
      analyse(apiLog, a.t0, 'lambda UpdateAlias', api);
      api.total.push(a.ms);
      analyse(siteLog, s.t0, 'kvs UpdateKeys', site);
      site.total.push(s.ms);
    }

    const budget = median(node) + TARGET_ROUND_TRIPS * LATENCY_MS + TARGET_SLACK_MS;
    const row = (name: string, m: Measure) => {
      const rounds = Math.max(...m.rounds);
      return `| \`${name}\` | ${range(m.first)} | ${range(m.flip)} | ${range(m.total)} | ${rounds} | ${rounds <= TARGET_ROUND_TRIPS && median(m.flip) <= budget ? 'met' : 'NOT met'} |`;
    };
    const verdict = (name: string, m: Measure) => {
      const rounds = Math.max(...m.rounds);
      return [
        `- ${name}: ${rounds} sequential round trip(s) before the flip (target <= ${TARGET_ROUND_TRIPS}: ${rounds <= TARGET_ROUND_TRIPS ? 'met' : 'NOT met'}); ` +
          `median time-to-flip ${ms(median(m.flip))} (target <= ${ms(budget)}: ${median(m.flip) <= budget ? 'met' : 'NOT met'}).`,
        `  Before the flip, by depth: ${grouped(m.before)}. After it: ${m.after.join(', ')}.`,
      ].join('\n');
    };
    return [
      '## cdk-rollback CLI: time to flip under 50 ms per request',
      '',
      `A loopback proxy in front of moto_server and one in front of the KeyValueStore stand-in hold every request ${LATENCY_MS} ms before forwarding it`,
      '(a model of a laptop far from the region). Each command is a fresh `node dist/bin/cdk-rollback.js … --yes` process with explicit targets;',
      `median of ${RUNS} interleaved runs (\`node -e 0\`, \`api rollback\`, \`site rollback\`) after one warm-up run, min–max in brackets.`,
      'Time-to-flip: from spawn to the proxy receiving the flip request (Lambda `UpdateAlias`, KVS `UpdateKeys`). Round trips: the sequential',
      'depth of the requests sent before the flip (one level deeper than the deepest request answered before it was sent).',
      '',
      `Node start-up (\`node -e 0\`, same runs): ${range(node)}. Target: <= ${TARGET_ROUND_TRIPS} round trips before the flip and time-to-flip <= Node start + ${TARGET_ROUND_TRIPS} × ${LATENCY_MS} ms + ${TARGET_SLACK_MS} ms = ${ms(budget)}.`,
      '',
      '| command | first request (start-up and module loading) | time-to-flip | total wall time | round trips before the flip | target |',
      '|---|---|---|---|---:|---|',
      row('api rollback --function orders --yes', api),
      row('site rollback --kvs … --bucket … --distribution … --yes', site),
      '',
      verdict('api rollback', api),
      verdict('site rollback', site),
      '',
      'The flip is the third round trip: 1. every independent read at once (aliases or KVS keys and ETag, tags, history, the audit\'s STS and SSM reads);',
      '2. what depends on them (in-flight deployments and the stack\'s status; the manifests and a re-read of the KVS keys that ties the ETag to the plan);',
      '3. the flip, guarded by the RevisionId / ETag read in 1. The audit write, the history and the invalidation come after it.',
    ].join('\n');
  } finally {
    restoreEnv();
    await motoProxy.close();
    await kvsProxy.close();
    await kvs.close();
    await moto.stop();
  }
}

// `node dist/bench/cli-latency.js` runs this section alone and prints it.
if (require.main === module) {
  run().then((s) => process.stdout.write(`${s}\n`), (e) => { console.error(e); process.exit(1); });
}
