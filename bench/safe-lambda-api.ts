/**
 * Synth time of apps with 1, 10 and 50 SafeLambdaApi against the same apps written by hand with
 * aws-cdk-lib (Function + Alias + LambdaDeploymentGroup + LambdaRestApi), measured side by side
 * (interleaved, median of several runs) in one process; and the size of each prebundled handler.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SafeLambdaApi } from '../lib';

const SIZES = [1, 10, 50];
const RUNS = 7;

function fn(stack: Stack, i: number): lambda.Function {
  return new lambda.Function(stack, `Fn${i}`, {
    runtime: lambda.Runtime.NODEJS_24_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline(`exports.handler = async () => ({ statusCode: 200, body: '${i}' });`),
  });
}

/** At most 10 APIs per stack (CloudFormation's 500-resource limit), as a real app would split them. */
const PER_STACK = 10;

function stackFor(app: App, i: number): Stack {
  const id = `Bench${Math.floor(i / PER_STACK)}`;
  return (app.node.tryFindChild(id) as Stack | undefined) ?? new Stack(app, id);
}

function synthSafe(n: number, outdir: string, validation: boolean): void {
  const app = new App({ outdir, builtinCloudFormationValidation: validation });
  for (let i = 0; i < n; i++) {
    const stack = stackFor(app, i);
    new SafeLambdaApi(stack, `Api${i}`, { handler: fn(stack, i) });
  }
  app.synth();
}

function synthByHand(n: number, outdir: string, validation: boolean): void {
  const app = new App({ outdir, builtinCloudFormationValidation: validation });
  for (let i = 0; i < n; i++) {
    const stack = stackFor(app, i);
    const f = fn(stack, i);
    const alias = new lambda.Alias(stack, `Live${i}`, { aliasName: 'live', version: f.currentVersion });
    new codedeploy.LambdaDeploymentGroup(stack, `Group${i}`, {
      alias,
      deploymentConfig: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES,
    });
    new apigateway.LambdaRestApi(stack, `Rest${i}`, { handler: alias });
  }
  app.synth();
}

function time(f: () => void): number {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(): Promise<string> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-sla-'));
  const out = (tag: string) => fs.mkdtempSync(path.join(tmp, tag));
  // warm-up: module loading and JIT, for both
  synthSafe(1, out('w'), true);
  synthByHand(1, out('w'), true);

  const rows: string[] = [];
  const perApi: number[] = [];
  for (const validation of [true, false]) {
    for (const n of SIZES) {
      const safe: number[] = [];
      const hand: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        // interleaved, alternating which goes first
        if (r % 2 === 0) {
          safe.push(time(() => synthSafe(n, out('s'), validation)));
          hand.push(time(() => synthByHand(n, out('h'), validation)));
        } else {
          hand.push(time(() => synthByHand(n, out('h'), validation)));
          safe.push(time(() => synthSafe(n, out('s'), validation)));
        }
      }
      const s = median(safe);
      const h = median(hand);
      if (validation) perApi.push(s / n);
      rows.push(`| ${validation ? 'on (default)' : 'off'} | ${n} | ${h.toFixed(0)} | ${s.toFixed(0)} | ${(s / h).toFixed(2)} | ${(s / n).toFixed(1)} |`);
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });

  const handlersDir = path.join(__dirname, '..', 'handlers');
  const sizes = fs.readdirSync(handlersDir).sort().map((name) => {
    const bytes = fs.statSync(path.join(handlersDir, name, 'index.js')).size;
    return `| ${name} | ${(bytes / 1024).toFixed(1)} KB | ${bytes <= 100 * 1024 ? 'yes' : 'NO'} |`;
  });

  return [
    '## SafeLambdaApi: synth time',
    '',
    `Median of ${RUNS} interleaved runs per size, one process, after a warm-up of both. "By hand" is Function + Alias +`,
    'LambdaDeploymentGroup (canary 10 % / 5 min) + LambdaRestApi per API; SafeLambdaApi adds its version, alarms,',
    'deployment custom resource (one Provider per stack) and access logs. Ten APIs per stack in both (500-resource',
    'limit). Target: ratio <= 1.3, linear growth. aws-cdk-lib 2.276 validates every template at synth with its',
    'built-in CloudFormation rules (WASM), which costs time in proportion to the resources; the second half of the table',
    'turns it off in both apps (`builtinCloudFormationValidation: false`) to show the constructs\' own cost.',
    '',
    '| built-in validation | APIs | by hand (ms) | SafeLambdaApi (ms) | ratio | SafeLambdaApi ms per API |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    `Growth (validation on): ms per API at 1 / 10 / 50 APIs = ${perApi.map((x) => x.toFixed(1)).join(' / ')} (flat or falling means linear or better).`,
    '',
    '## Prebundled handler sizes (minified, AWS SDK v3 external unless bundled on purpose)',
    '',
    '| handler | size | <= 100 KB |',
    '|---|---:|:---:|',
    ...sizes,
    '',
  ].join('\n');
}
