/// <reference types="jest" />
/**
 * Shared setup of the tests that run the CLI's `main()` in-process (cli.inprocess, cli.safety): moto_server and the
 * KeyValueStore stand-in for the file, both emptied before each test, and a deployed stack mocked in CloudFormation.
 */
import { CloudFormationClient, DescribeStacksCommand, GetTemplateCommand, ListStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import { GetAliasCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { AwsClientStub } from 'aws-sdk-client-mock';
import { KvsServer, startKvsServer } from '../fixtures/cli/kvs-server';
import { MotoServer, useMotoServer } from './moto';

/**
 * Jest fixture: starts the KeyValueStore stand-in before the file's tests, points the SDK at it
 * (AWS_ENDPOINT_URL_CLOUDFRONT_KEYVALUESTORE, by name so that the SigV4A host is not an IP) and closes it afterwards.
 */
export function useKvsServer(): KvsServer {
  let server: KvsServer | undefined;
  beforeAll(async () => {
    server = await startKvsServer();
    process.env.AWS_ENDPOINT_URL_CLOUDFRONT_KEYVALUESTORE = server.endpoint.replace('127.0.0.1', 'localhost');
  });
  afterAll(async () => {
    delete process.env.AWS_ENDPOINT_URL_CLOUDFRONT_KEYVALUESTORE;
    await server?.close();
  });
  const get = (): KvsServer => {
    if (!server) throw new Error('useKvsServer: the server is only available inside tests (after beforeAll)');
    return server;
  };
  return {
    get endpoint() { return get().endpoint; },
    get requests() { return get().requests; },
    get stores() { return get().stores; },
    etag: (arn) => get().etag(arn),
    close: () => get().close(),
  };
}

/**
 * Jest fixture for `main()` in-process: moto_server (useMotoServer) and the KeyValueStore stand-in (useKvsServer),
 * both emptied before each test.
 */
export function useInProcessCli(): { moto: MotoServer; kvs: KvsServer } {
  const moto = useMotoServer();
  const kvs = useKvsServer();
  beforeEach(async () => {
    await moto.reset();
    kvs.stores.clear();
    kvs.requests.length = 0;
  });
  return { moto, kvs };
}

/** The version the `live` alias of a function points at (in moto). */
export const liveVersion = async (fn: string) => (await new LambdaClient({}).send(new GetAliasCommand({ FunctionName: fn, Name: 'live' }))).FunctionVersion;

/** The template-level Metadata the constructs write on their resources. */
export const constructMeta = (kind: string, role: string, path: string) => ({ 'cdk-rollback': { version: 1, kind, role, path } });

/** An API (App/Api: function, CodeDeploy application and group), a site (App/Web: bucket, distribution, KeyValueStore) and a cluster. */
export function apiSiteAndClusterResources(): Record<string, unknown> {
  return {
    ApiFn: { Type: 'AWS::Lambda::Function', Metadata: constructMeta('SafeLambdaApi', 'function', 'App/Api') },
    ApiApp: { Type: 'AWS::CodeDeploy::Application', Metadata: constructMeta('SafeLambdaApi', 'application', 'App/Api') },
    ApiGroup: { Type: 'AWS::CodeDeploy::DeploymentGroup', Metadata: constructMeta('SafeLambdaApi', 'deployment-group', 'App/Api') },
    WebBucket: { Type: 'AWS::S3::Bucket', Metadata: constructMeta('VersionedSite', 'bucket', 'App/Web') },
    WebDist: { Type: 'AWS::CloudFront::Distribution', Metadata: constructMeta('VersionedSite', 'distribution', 'App/Web') },
    WebKvs: { Type: 'AWS::CloudFront::KeyValueStore', Metadata: constructMeta('VersionedSite', 'key-value-store', 'App/Web') },
    Cluster: { Type: 'AWS::RDS::DBCluster' },
  };
}

/**
 * Mocks (after a reset) the deployed stack App in CloudFormation: its status (and reason), its template's resources
 * and their physical ids (logical id -> physical id).
 */
export function mockDeployedStack(cfn: AwsClientStub<CloudFormationClient>, stack: {
  status: string;
  reason?: string;
  resources: Record<string, unknown>;
  physical: Record<string, string>;
}): void {
  cfn.reset();
  cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'App', StackStatus: stack.status as never, CreationTime: new Date(0), StackStatusReason: stack.reason }] });
  cfn.on(GetTemplateCommand).resolves({ TemplateBody: JSON.stringify({ Resources: stack.resources }) });
  cfn.on(ListStackResourcesCommand).resolves({ StackResourceSummaries: Object.entries(stack.physical).map(([LogicalResourceId, PhysicalResourceId]) => ({
    LogicalResourceId, PhysicalResourceId, ResourceType: 'x', ResourceStatus: 'UPDATE_COMPLETE', LastUpdatedTimestamp: new Date(0),
  })) });
}
