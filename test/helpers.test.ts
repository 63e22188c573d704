import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { useMotoServer } from './helpers/moto';
import { runCfnLint, synthAndValidate } from './helpers/synth-and-validate';
import { requireTool } from './helpers/tools';

describe('moto_server fixture', () => {
  const moto = useMotoServer();
  test('points the AWS SDK at a loopback moto_server', async () => {
    expect(process.env.AWS_ENDPOINT_URL).toBe(moto.endpoint);
    expect(moto.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const out = await new S3Client({}).send(new ListBucketsCommand({}));
    expect(out.Buckets ?? []).toEqual([]);
  });
});

describe('synthAndValidate', () => {
  test('fails on an unacknowledged cdk-nag error', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    new sqs.Queue(stack, 'Q'); // AwsSolutions-SQS3 (no DLQ) and SQS4 (no SSL enforcement)
    expect(() => synthAndValidate(app)).toThrow(/AwsSolutions-SQS/);
  });
});

describe('runCfnLint', () => {
  test('reports a cfn-lint error with its rule id', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lint-'));
    const file = path.join(dir, 'bad.template.json');
    fs.writeFileSync(file, JSON.stringify({
      Resources: { Q: { Type: 'AWS::SQS::Queue', Properties: { NoSuchProperty: 1 } } },
    }));
    expect(() => runCfnLint([file])).toThrow(/E3002/);
  });

  test('passes a clean synthesized stack', () => {
    const app = new App();
    const stack = new Stack(app, 'Clean');
    new sqs.Queue(stack, 'Q', { enforceSSL: true });
    const { templates } = synthAndValidateIgnoringNag(app);
    expect(Object.keys(templates)).toEqual(['Clean']);
  });
});

/** cfn-lint only: the queue above still has cdk-nag findings. */
function synthAndValidateIgnoringNag(app: App) {
  const assembly = app.synth();
  const files = assembly.stacks.map((s) => path.join(assembly.directory, s.templateFile));
  runCfnLint(files);
  return { templates: Object.fromEntries(assembly.stacks.map((s) => [s.stackName, s.template])) };
}

describe('requireTool', () => {
  test('a missing tool fails fast with the install hint, it never skips', () => {
    expect(() => requireTool('moto_server_that_is_not_installed'))
      .toThrow(/`moto_server_that_is_not_installed` is required by the tests but is not usable \(.*\)\. Install it with: pip install "moto\[server\]" cfn-lint/);
  });
});
