/**
 * Benchmark: `cdk-rollback api rollback` and `cdk-rollback site rollback` with explicit targets, run as
 * the built CLI (`node dist/bin/cdk-rollback.js`, a fresh Node process each time, so start-up counts)
 * against moto_server on loopback. A recording proxy in front of moto lists the AWS calls each command
 * makes. moto has no CloudFront KeyValueStore API: the site's KVS calls go to a loopback stand-in
 * (test/fixtures/cli/kvs-server.ts) that speaks the same REST-JSON protocol and checks ETags; the real
 * client signs them with SigV4A.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { LambdaClient, UpdateAliasCommand } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { KVS_ARN } from '../test/fixtures/cli/aws';
import { startKvsServer } from '../test/fixtures/cli/kvs-server';
import { startMotoServer } from '../test/helpers/moto';
import { builtCli, cliChildEnv, pointSdkAtMoto, startForwardingProxy } from './cli-harness';
import { createRollbackTargets, resetSiteHistory } from './rollback-targets';

const RUNS = 7;

/** Names the operation of a REST-protocol call (Lambda, S3, CloudFront) from its method and path. */
function restOperation(service: string, method: string, p: string): string {
  const rules: [string, string, RegExp, string][] = [
    ['lambda', 'GET', /\/functions\/[^/]+\/aliases\/[^/]+$/, 'GetAlias'],
    ['lambda', 'PUT', /\/functions\/[^/]+\/aliases\/[^/]+$/, 'UpdateAlias'],
    ['lambda', 'GET', /\/functions\/[^/]+\/configuration$/, 'GetFunctionConfiguration'],
    ['lambda', 'GET', /\/functions\/[^/]+$/, 'GetFunction'],
    ['s3', 'GET', /./, 'GetObject'],
    ['s3', 'PUT', /./, 'PutObject'],
    ['cloudfront', 'POST', /\/invalidation$/, 'CreateInvalidation'],
    ['cloudfront', 'GET', /\/invalidation\/[^/]+$/, 'GetInvalidation'],
  ];
  const hit = rules.find(([svc, m, re]) => svc === service && m === method && re.test(p));
  return hit ? `${hit[3]}${service === 's3' ? ` ${p.split('/').slice(2).join('/')}` : ''}` : `${method} ${p}`;
}

/** A loopback proxy in front of moto that records one line per AWS call: `service Operation`. */
async function startRecordingProxy(target: string): Promise<{ endpoint: string; calls: string[]; close(): Promise<void> }> {
  const calls: string[] = [];
  const { server, endpoint } = await startForwardingProxy(target, (req, body, forward) => {
    const scope = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(String(req.headers.authorization ?? ''));
    const service = scope?.[1] ?? '?';
    const amzTarget = req.headers['x-amz-target'];
    const action = /(?:^|&)Action=([^&]+)/.exec(body.toString())?.[1];
    const op = typeof amzTarget === 'string' ? amzTarget.split('.').pop()! : action ?? restOperation(service, req.method ?? '', (req.url ?? '').split('?')[0]);
    calls.push(`${service} ${op}`);
    forward();
  });
  return {
    endpoint,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function timeRun(args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, code: code ?? -1, stderr }));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

function countCalls(calls: string[]): string {
  const counts = new Map<string, number>();
  for (const c of calls) counts.set(c, (counts.get(c) ?? 0) + 1);
  return [...counts].map(([c, n]) => `\`${c}\`${n > 1 ? ` ×${n}` : ''}`).join(', ');
}

export async function run(): Promise<string> {
  const { root, cli, dnsShim } = builtCli();
  // The CLI as it shipped before it was prebundled: tsc's modules (dist/bin/cli), loading its libraries from
  // node_modules. Same code, same flags; only the packaging differs.
  const unbundledMain = path.join(root, 'dist', 'bin', 'cli', 'index.js');
  if (!fs.existsSync(unbundledMain)) throw new Error(`${unbundledMain} is missing: run \`npm run build\` first`);
  const unbundled = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cli-unbundled-')), 'cdk-rollback-unbundled.js');
  fs.writeFileSync(unbundled, `require(${JSON.stringify(unbundledMain)}).main(process.argv.slice(2)).then((c) => { process.exitCode = c; });\n`);

  const moto = await startMotoServer();
  const proxy = await startRecordingProxy(moto.endpoint);
  const kvs = await startKvsServer();
  const restoreEnv = pointSdkAtMoto(moto.endpoint);
  try {
    // Set up directly against moto (not through the proxy, so only the CLI's calls are recorded).
    const dist = await createRollbackTargets();

    const childEnv = cliChildEnv(proxy.endpoint, kvs.endpoint);
    const siteEnv = { ...childEnv, NODE_OPTIONS: `--require ${dnsShim}` };

    const baseline: number[] = [];
    const help: number[] = [];
    const api: number[] = [];
    const site: number[] = [];
    const helpUnbundled: number[] = [];
    const apiUnbundled: number[] = [];
    let apiCalls: string[] = [];
    let siteCalls: string[] = [];
    let kvsCalls: string[] = [];
    const lambda = new LambdaClient({});
    const s3 = new S3Client({});
    // Run 0 is a warm-up, reported apart: moto imports each service's backend on its first request.
    const warmup: { api?: number; site?: number } = {};
    for (let i = 0; i <= RUNS; i++) {
      const b = await timeRun(['-e', '0'], childEnv);
      // bundled and unbundled alternate which goes first
      const order = i % 2 === 0 ? [cli, unbundled] : [unbundled, cli];
      const helps = new Map<string, number>();
      for (const entry of order) helps.set(entry, (await timeRun([entry, '--help'], childEnv)).ms);
      if (i > 0) {
        baseline.push(b.ms);
        help.push(helps.get(cli)!);
        helpUnbundled.push(helps.get(unbundled)!);
      }

      for (const entry of order.filter((e) => e === unbundled)) {
        await lambda.send(new UpdateAliasCommand({ FunctionName: 'orders', Name: 'live', FunctionVersion: '3' }));
        const u = await timeRun([entry, 'api', 'rollback', '--function', 'orders', '--yes'], childEnv);
        if (u.code !== 0) throw new Error(`unbundled api rollback failed (${u.code}): ${u.stderr}`);
        if (i > 0) apiUnbundled.push(u.ms);
      }

      await lambda.send(new UpdateAliasCommand({ FunctionName: 'orders', Name: 'live', FunctionVersion: '3' }));
      proxy.calls.length = 0;
      const a = await timeRun([cli, 'api', 'rollback', '--function', 'orders', '--yes'], childEnv);
      if (a.code !== 0) throw new Error(`api rollback failed (${a.code}): ${a.stderr}`);
      if (i === 0) warmup.api = a.ms;
      else api.push(a.ms);
      apiCalls = [...proxy.calls];

      kvs.stores.set(KVS_ARN, new Map([['active', 'r3'], ['previous', 'r2']]));
      await resetSiteHistory(s3);
      proxy.calls.length = 0;
      kvs.requests.length = 0;
      const s = await timeRun([cli, 'site', 'rollback', '--kvs', KVS_ARN, '--bucket', 'bench-site', '--distribution', dist, '--yes'], siteEnv);
      if (s.code !== 0) throw new Error(`site rollback failed (${s.code}): ${s.stderr}`);
      if (i === 0) warmup.site = s.ms;
      else site.push(s.ms);
      siteCalls = [...proxy.calls];
      kvsCalls = kvs.requests.map((q) => `cloudfront-keyvaluestore ${q.operation}`);
    }

    return [
      '## cdk-rollback CLI: one-command rollback',
      '',
      `Each command is a fresh \`node dist/bin/cdk-rollback.js … --yes\` process with explicit targets (wall time from spawn to exit, so Node start-up and module loading count), against moto_server on loopback; median of ${RUNS} runs after one warm-up run (min–max in brackets). The KeyValueStore calls go to a loopback stand-in server (moto has no KeyValueStore API), signed with SigV4A by the real client; a recording proxy in front of moto lists the AWS calls.`,
      '',
      '| command | median wall time | AWS calls |',
      '|---|---|---|',
      `| \`node -e 0\` (Node start-up alone) | ${fmt(median(baseline))} (${fmt(Math.min(...baseline))}–${fmt(Math.max(...baseline))}) | none |`,
      `| \`cdk-rollback --help\` (CLI start-up) | ${fmt(median(help))} (${fmt(Math.min(...help))}–${fmt(Math.max(...help))}) | none |`,
      `| \`cdk-rollback api rollback --function orders --yes\` | ${fmt(median(api))} (${fmt(Math.min(...api))}–${fmt(Math.max(...api))}) | ${apiCalls.length}: ${countCalls(apiCalls)} |`,
      `| \`cdk-rollback site rollback --kvs … --bucket … --distribution … --yes\` | ${fmt(median(site))} (${fmt(Math.min(...site))}–${fmt(Math.max(...site))}) | ${siteCalls.length + kvsCalls.length}: ${countCalls([...kvsCalls, ...siteCalls])} |`,
      '',
      `A first, uncounted warm-up run of each (moto imports a service's backend on its first request) took ${fmt(warmup.api ?? 0)} (api) and ${fmt(warmup.site ?? 0)} (site).`,
      '',
      'Why each call: Lambda GetFunction (tags → CodeDeploy group, stack), GetAlias live/stable (from → to, loop protection, the RevisionId that guards the flip), CodeDeploy ListDeployments (an in-flight deployment is stopped instead), CloudFormation DescribeStackResources (the function\'s stack, whose status is checked), UpdateAlias (the rollback); KVS DescribeKeyValueStore (the ETag that guards the flip) + GetKey active/previous (twice: the second read ties the ETag to the plan), S3 GetObject of the history and of the two manifests, GetBucketTagging (the site\'s stack), then UpdateKeys (the flip), the history PutObject, CloudFront CreateInvalidation; STS GetCallerIdentity + SSM GetParameter (read before the flip, in parallel) and PutParameter (after it) for the audit record.',
      '',
      'Target: < 1.5 s wall each. The runbooks\' rollback by redeploy takes 3–10 minutes (their own figure, not measured here). moto on loopback has no network latency: against AWS, add one round trip per call above.',
      '',
      '### Start-up: the prebundled CLI against the same CLI unbundled',
      '',
      `Same runs, interleaved (the two alternate which goes first): the shipped CLI (\`dist/bin/cdk-rollback.js\`, an esbuild bundle whose subcommands are lazily loaded chunks) and tsc's output of the same sources loading its libraries from node_modules, as the package shipped before (median of ${RUNS}, min–max).`,
      '',
      '| command | prebundled | unbundled (before) | ratio |',
      '|---|---|---|---|',
      `| \`--help\` | ${fmt(median(help))} (${fmt(Math.min(...help))}–${fmt(Math.max(...help))}) | ${fmt(median(helpUnbundled))} (${fmt(Math.min(...helpUnbundled))}–${fmt(Math.max(...helpUnbundled))}) | ${(median(helpUnbundled) / median(help)).toFixed(2)}x |`,
      `| \`api rollback --function orders --yes\` | ${fmt(median(api))} (${fmt(Math.min(...api))}–${fmt(Math.max(...api))}) | ${fmt(median(apiUnbundled))} (${fmt(Math.min(...apiUnbundled))}–${fmt(Math.max(...apiUnbundled))}) | ${(median(apiUnbundled) / median(api)).toFixed(2)}x |`,
    ].join('\n');
  } finally {
    restoreEnv();
    await kvs.close();
    await proxy.close();
    await moto.stop();
  }
}
