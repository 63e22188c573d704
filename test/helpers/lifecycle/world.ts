/// <reference types="jest" />
/**
 * Everything the lifecycle driver runs against, as a jest fixture: moto_server, the KVS stand-in, the
 * in-memory CodeDeploy, the gateway in front of them, the simulated clock, and what the stack's constructs
 * deploy (a SafeLambdaApi function with versions and its deployment group, a VersionedSite bucket with
 * release assets, a distribution and a KeyValueStore), plus read-outs of what serves traffic.
 *
 * The test file must load test/fixtures/cli/loopback-dns.js (the KVS client puts the account id in front of
 * the endpoint host).
 */
import { CloudFrontClient } from '@aws-sdk/client-cloudfront';
import { CreateRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import {
  CreateFunctionCommand,
  GetAliasCommand,
  LambdaClient,
  ListAliasesCommand,
  ListVersionsByFunctionCommand,
  PublishVersionCommand,
  UpdateFunctionConfigurationCommand,
} from '@aws-sdk/client-lambda';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import * as crypto from 'crypto';
import { SITE_HISTORY_KEY, SITE_KVS_ACTIVE_KEY, SITE_KVS_PREVIOUS_KEY } from '../../../lambda/shared/contract';
import { immutablePattern, SITE_MANIFESTS_PREFIX } from '../../../lambda/shared/site-contract';
import { KvsServer, startKvsServer } from '../../fixtures/cli/kvs-server';
import { createBuckets, createDistribution, putZip } from '../../fixtures/site/helpers';
import { zipOf } from '../lambda-fixtures';
import { FAKE_ENV, MotoServer, startMotoServer } from '../moto';
import { installSimClock, SimClock } from './clock';
import { DEFAULT_TIMELINE, InMemoryCodeDeploy } from './codedeploy';
import { LifecycleStack, Props, ResourceSpec } from './driver';
import { Gateway, startGateway } from './gateway';

export const ACCOUNT = '123456789012';
export const KVS_ARN = `arn:aws:cloudfront::${ACCOUNT}:key-value-store/5a6b7c8d-0000-4000-8000-00000000000a`;

/** The provider settings the constructs deploy (lib/private/alias-deployment-provider.ts, lib/versioned-site.ts). */
export const API_RESOURCE: ResourceSpec = {
  logicalId: 'ApiDeployment',
  resourceType: 'Custom::CdkRollbackAliasDeployment',
  provider: { handler: 'alias-deployment', queryIntervalSeconds: 20, totalTimeoutSeconds: 55 * 60 },
};
export const SITE_RESOURCE: ResourceSpec = {
  logicalId: 'SiteRelease',
  resourceType: 'Custom::CdkRollbackSiteRelease',
  provider: { handler: 'site-release', queryIntervalSeconds: 15, totalTimeoutSeconds: 30 * 60 },
};

export const SNAPSHOT_RESOURCE: ResourceSpec = {
  logicalId: 'PreMigrationSnapshot',
  resourceType: 'Custom::PreMigrationSnapshot',
  provider: { handler: 'pre-migration-snapshot', queryIntervalSeconds: 30, totalTimeoutSeconds: 55 * 60 },
};

export const API = {
  functionName: 'orders-fn',
  applicationName: 'orders-app',
  deploymentGroupName: 'orders-group',
  preHook: 'orders-pre-traffic',
} as const;

export const SITE = { bucket: 'site-bucket', assets: 'cdk-assets' } as const;

export interface ApiView {
  live: string;
  weights: Record<string, number>;
  stable?: string;
}

export interface SiteView {
  active?: string;
  previous?: string;
}

export interface VersionDelete {
  readonly version: string;
  /** Aliases that pointed or routed at it (Lambda refuses the delete then). */
  readonly aliasedBy: string[];
  /** In-flight CodeDeploy deployments whose AppSpec names it. */
  readonly inFlightDeployments: string[];
}

export class LifecycleWorld {
  readonly logs: string[] = [];
  /** Every version delete a handler or the CLI asked for. */
  readonly versionDeletes: VersionDelete[] = [];
  distributionId = '';
  private versionCount = 0;
  private releaseCount = 0;

  constructor(
    readonly moto: MotoServer,
    readonly kvs: KvsServer,
    readonly cd: InMemoryCodeDeploy,
    readonly gateway: Gateway,
    readonly clock: SimClock,
    /** Clients straight to moto: what CloudFormation itself does (publishing versions, assets), never throttled. */
    readonly direct: { lambda: LambdaClient; s3: S3Client; cloudfront: CloudFrontClient },
    private readonly stacks: LifecycleStack[],
  ) {}

  async reset(): Promise<void> {
    await this.moto.reset();
    this.kvs.stores.clear();
    this.kvs.requests.length = 0;
    this.cd.deployments.clear();
    this.cd.groups.clear();
    this.cd.calls.length = 0;
    this.cd.nextOutcomes.length = 0;
    this.cd.outcomeFor = () => 'succeed';
    this.cd.timeline = { ...DEFAULT_TIMELINE };
    this.gateway.clearThrottles();
    this.gateway.calls.length = 0;
    this.gateway.deletedVersions.clear();
    this.stacks.length = 0;
    this.logs.length = 0;
    this.versionDeletes.length = 0;
    this.versionCount = 0;
    this.releaseCount = 0;
  }

  newStack(name: string, specs: ResourceSpec[]): LifecycleStack {
    const s = new LifecycleStack(name, specs, this.clock);
    this.stacks.push(s);
    return s;
  }

  // --- SafeLambdaApi -------------------------------------------------------------------------------------

  /** The function (no version yet) and its CodeDeploy group. */
  async createApiFunction(deploymentConfigName = 'CodeDeployDefault.LambdaCanary10Percent5Minutes'): Promise<void> {
    const role = await new IAMClient({ endpoint: this.moto.endpoint }).send(new CreateRoleCommand({
      RoleName: `${API.functionName}-role`,
      AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }] }),
    }));
    await this.direct.lambda.send(new CreateFunctionCommand({
      FunctionName: API.functionName, Runtime: 'nodejs22.x', Role: role.Role!.Arn!, Handler: 'index.handler',
      Code: { ZipFile: await zipOf('exports.handler = async () => ({ statusCode: 200 });') },
    }));
    this.cd.addGroup(API.applicationName, API.deploymentGroupName, deploymentConfigName);
  }

  /** What CloudFormation's AWS::Lambda::Version does on a code change: publishes the next version. */
  async publishVersion(): Promise<string> {
    const n = ++this.versionCount;
    await this.direct.lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: API.functionName, Environment: { Variables: { RELEASE: String(n) } } }));
    const out = await this.direct.lambda.send(new PublishVersionCommand({ FunctionName: API.functionName, Description: `v${n}` }));
    return out.Version!;
  }

  apiProps(targetVersion: string, extra: Partial<Props> = {}): Props {
    return {
      FunctionName: API.functionName,
      TargetVersion: targetVersion,
      ApplicationName: API.applicationName,
      DeploymentGroupName: API.deploymentGroupName,
      BeforeAllowTrafficHook: API.preHook,
      AfterAllowTrafficHook: '',
      RetainVersions: '3',
      MaxDeploymentSeconds: '900',
      ConstructPath: 'App/Api',
      // lib/safe-lambda-api.ts: the Provider's totalTimeout (55 min)
      WaitLimitSeconds: String(55 * 60),
      ...extra,
    };
  }

  async api(): Promise<ApiView> {
    const alias = async (name: string) => {
      try {
        return await this.direct.lambda.send(new GetAliasCommand({ FunctionName: API.functionName, Name: name }));
      } catch (e) {
        if ((e as Error).name === 'ResourceNotFoundException') return undefined;
        throw e;
      }
    };
    const [live, stable] = await Promise.all([alias('live'), alias('stable')]);
    return { live: live?.FunctionVersion ?? '', weights: live?.RoutingConfig?.AdditionalVersionWeights ?? {}, stable: stable?.FunctionVersion };
  }

  async existingVersions(): Promise<Set<string>> {
    const out = new Set<string>();
    let marker: string | undefined;
    do {
      const page = await this.direct.lambda.send(new ListVersionsByFunctionCommand({ FunctionName: API.functionName, Marker: marker }));
      for (const v of page.Versions ?? []) {
        if (v.Version && v.Version !== '$LATEST' && !this.gateway.deletedVersions.has(`${API.functionName}:${v.Version}`)) out.add(v.Version);
      }
      marker = page.NextMarker;
    } while (marker);
    return out;
  }

  /** Gateway hook: records the delete; refuses it as Lambda does when an alias points or routes at the version. */
  async beforeVersionDelete(functionName: string, version: string): Promise<string | undefined> {
    const aliasedBy: string[] = [];
    const out = await this.direct.lambda.send(new ListAliasesCommand({ FunctionName: functionName }));
    for (const a of out.Aliases ?? []) {
      if (a.FunctionVersion === version || Object.keys(a.RoutingConfig?.AdditionalVersionWeights ?? {}).includes(version)) aliasedBy.push(a.Name!);
    }
    const inFlightDeployments = this.cd.inFlight()
      .filter((d) => d.spec.functionName === functionName && (d.spec.currentVersion === version || d.spec.targetVersion === version))
      .map((d) => d.id);
    this.versionDeletes.push({ version, aliasedBy, inFlightDeployments });
    return aliasedBy.length > 0 ? `Unable to delete version because the following aliases reference it: [${aliasedBy.join(', ')}]` : undefined;
  }

  // --- VersionedSite -------------------------------------------------------------------------------------

  async createSite(): Promise<void> {
    await createBuckets(this.direct.s3, SITE.bucket, SITE.assets);
    this.distributionId = await createDistribution(this.direct.cloudfront);
    this.kvs.stores.set(KVS_ARN, new Map());
  }

  /** What CDK asset publishing does for a new build: the zip in the asset bucket; returns its release id. */
  async publishRelease(): Promise<string> {
    const n = ++this.releaseCount;
    const files = {
      'index.html': `<html><script src="/assets/app.${String(n).padStart(8, '0')}.js"></script>release ${n}</html>`,
      [`assets/app.${String(n).padStart(8, '0')}.js`]: `console.log(${n})`,
      'robots.txt': 'User-agent: *',
    };
    const id = crypto.createHash('sha256').update(`release-${n}`).digest('hex').slice(0, 20);
    await putZip(this.direct.s3, SITE.assets, `${id}.zip`, files);
    return id;
  }

  siteProps(releaseId: string, extra: Partial<Props> = {}): Props {
    return {
      BucketName: SITE.bucket,
      DistributionId: this.distributionId,
      KvsArn: KVS_ARN,
      AssetBucket: SITE.assets,
      AssetKey: `${releaseId}.zip`,
      ReleaseId: releaseId,
      SourceHash: `source-${releaseId}`,
      ImmutablePattern: immutablePattern(),
      RetainReleases: '3',
      WaitForInvalidation: 'false',
      RemovalPolicy: 'retain',
      Concurrency: '8',
      ...extra,
    };
  }

  site(): SiteView {
    const store = this.kvs.stores.get(KVS_ARN);
    return { active: store?.get(SITE_KVS_ACTIVE_KEY), previous: store?.get(SITE_KVS_PREVIOUS_KEY) };
  }

  /** Whether release `id` can still be served: its manifest and index.html are in the bucket. */
  async releaseServable(id: string): Promise<boolean> {
    try {
      await this.direct.s3.send(new HeadObjectCommand({ Bucket: SITE.bucket, Key: `${SITE_MANIFESTS_PREFIX}${id}.json` }));
      await this.direct.s3.send(new HeadObjectCommand({ Bucket: SITE.bucket, Key: `releases/${id}/index.html` }));
      return true;
    } catch {
      return false;
    }
  }

  async siteHistory(): Promise<{ id: string; status: string }[]> {
    try {
      const out = await this.direct.s3.send(new GetObjectCommand({ Bucket: SITE.bucket, Key: SITE_HISTORY_KEY }));
      return (JSON.parse(await out.Body!.transformToString()) as { releases: { id: string; status: string }[] }).releases;
    } catch {
      return [];
    }
  }

  /** Lets simulated time pass until CodeDeploy has nothing in flight (an operator waiting). */
  async waitForCodeDeploy(maxSeconds = 3600): Promise<void> {
    for (let waited = 0; this.cd.inFlight().length > 0; waited += 10) {
      if (waited > maxSeconds) throw new Error(`CodeDeploy still has ${this.cd.inFlight().map((d) => d.id).join(', ')} in flight after ${maxSeconds} s`);
      this.clock.advance(10_000);
      await this.cd.settle();
    }
  }
}

/**
 * Jest fixture: starts everything before the file's tests (AWS_ENDPOINT_URL -> the gateway) and stops it
 * afterwards; `beforeEach` resets all state. Handler logs are kept in `world.logs`, not printed.
 */
export function useLifecycleWorld(): () => LifecycleWorld {
  let world: LifecycleWorld | undefined;
  let clock: SimClock | undefined;
  const saved: Record<string, string | undefined> = {};
  const setEnv = (k: string, v: string) => {
    if (!(k in saved)) saved[k] = process.env[k];
    process.env[k] = v;
  };
  beforeAll(async () => {
    for (const [k, v] of Object.entries(FAKE_ENV)) setEnv(k, v);
    const moto = await startMotoServer();
    const kvs = await startKvsServer();
    clock = installSimClock();
    const direct = {
      lambda: new LambdaClient({ endpoint: moto.endpoint }),
      s3: new S3Client({ endpoint: moto.endpoint, forcePathStyle: true }),
      cloudfront: new CloudFrontClient({ endpoint: moto.endpoint }),
    };
    const cd = new InMemoryCodeDeploy(direct.lambda, clock.now);
    const stacks: LifecycleStack[] = [];
    const gateway = await startGateway({
      motoEndpoint: moto.endpoint, kvsEndpoint: kvs.endpoint, codedeploy: cd, stacks: () => stacks,
      beforeVersionDelete: (fn, v) => world!.beforeVersionDelete(fn, v),
    });
    setEnv('AWS_ENDPOINT_URL', gateway.endpoint);
    setEnv('AWS_ENDPOINT_URL_CLOUDFRONT_KEYVALUESTORE', gateway.endpoint.replace('127.0.0.1', 'localhost'));
    world = new LifecycleWorld(moto, kvs, cd, gateway, clock, direct, stacks);
    const keep = (...args: unknown[]) => {
      world?.logs.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ').slice(0, 2000));
      if (world && world.logs.length > 400) world.logs.splice(0, world.logs.length - 400);
    };
    for (const m of ['log', 'info', 'warn', 'error'] as const) jest.spyOn(console, m).mockImplementation(keep);
  }, 60_000);
  beforeEach(async () => { await world?.reset(); });
  afterAll(async () => {
    jest.restoreAllMocks();
    clock?.uninstall();
    await world?.gateway.close();
    await world?.kvs.close();
    await world?.moto.stop();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  return () => {
    if (!world) throw new Error('useLifecycleWorld: only available inside tests');
    return world;
  };
}
