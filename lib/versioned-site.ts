import * as fs from 'fs';
import { Annotations, Aws, CfnResource, CustomResource, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { SITE_RELEASES_PREFIX } from '../lambda/shared/contract';
import { handlerCode } from './private/handler-code';
import { markForCli } from './private/metadata';
import { acknowledgeProviderFramework } from './private/nag';
import { SITE_POOL_PREFIX, immutablePattern } from '../lambda/shared/site-contract';
import { renderRouterCode } from './private/site-router';
import { hashFolder, listFiles, releaseIdOf } from './private/site-source';

/** Properties of a {@link VersionedSite}. */
export interface VersionedSiteProps {
  /**
   * Path of the folder holding the built site (`dist/`, `build/`): uploaded as a CDK asset and released
   * as an immutable release whose id is a hash of the folder's content.
   */
  readonly source: string;

  /**
   * Custom domain name of the distribution (`www.example.com`). Requires `certificate`.
   * @default - the distribution's `*.cloudfront.net` domain only
   */
  readonly domainName?: string;

  /**
   * ACM certificate for `domainName`, in us-east-1.
   * @default - none
   */
  readonly certificate?: acm.ICertificate;

  /**
   * How many releases to keep in the bucket, newest first; the active and the previous release are always
   * kept. At least 2.
   * @default 10
   */
  readonly retainReleases?: number;

  /**
   * Folder prefixes (`assets/`, `static/`) whose every file is immutable: served from the shared pool with
   * `Cache-Control: public, max-age=31536000, immutable`, whatever its name.
   * @default - only files whose name carries a content hash (`app.3f9a1c2b.js`, `index-BxK3a9Zq.js`)
   */
  readonly immutablePaths?: string[];

  /**
   * Detect content hashes in file names (`app.3f9a1c2b.js`) and treat those files as immutable.
   * @default true
   */
  readonly detectHashedNames?: boolean;

  /**
   * Serve the root `index.html` for extension-less paths (`/users/42`), as single-page apps need.
   * When false, `/about` serves `/about/index.html`. `/docs/` always serves `/docs/index.html`.
   * @default true
   */
  readonly spaFallback?: boolean;

  /**
   * Wait until the CloudFront invalidations of a release have completed before the deployment continues.
   * @default false
   */
  readonly waitForInvalidation?: boolean;

  /**
   * What happens to the bucket and its releases when the site is removed from the stack.
   * `RemovalPolicy.DESTROY` deletes every release; anything else keeps the bucket and its releases.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Content-Security-Policy header value.
   * @default - no Content-Security-Policy header
   */
  readonly contentSecurityPolicy?: string;

  /**
   * Bucket receiving the distribution's standard logs (`cloudfront/`) and the site bucket's server access
   * logs (`s3/`). It must allow ACLs for CloudFront standard logging.
   * @default - no logs
   */
  readonly logBucket?: s3.IBucket;

  /**
   * ARN of a WAF web ACL (scope CLOUDFRONT) to attach to the distribution.
   * @default - no web ACL
   */
  readonly webAclId?: string;

  /**
   * CloudFront price class.
   * @default cloudfront.PriceClass.PRICE_CLASS_ALL
   */
  readonly priceClass?: cloudfront.PriceClass;

  /**
   * Parallel uploads of the release handler. Between 1 and 64.
   * @default 16
   */
  readonly uploadConcurrency?: number;
}

const PROVIDER_ID = 'CdkRollbackSiteReleaseProvider';

/**
 * A CloudFront + S3 frontend whose every build is an immutable release, switched by a pointer in a
 * CloudFront KeyValueStore: deploys, rollbacks and CloudFormation rollbacks take seconds, without a rebuild.
 */
export class VersionedSite extends Construct {
  /** The private bucket holding the releases. */
  public readonly bucket: s3.IBucket;
  /** The distribution serving the active release. */
  public readonly distribution: cloudfront.IDistribution;
  /** The KeyValueStore holding the `active` and `previous` release ids. */
  public readonly keyValueStore: cloudfront.IKeyValueStore;
  /** Id of the release this synth deploys (a hash of the source folder and the layout rules). */
  public readonly releaseId: string;
  /** Hash of the source folder's content. */
  public readonly sourceHash: string;

  private readonly dist: cloudfront.Distribution;

  constructor(scope: Construct, id: string, props: VersionedSiteProps) {
    super(scope, id);
    this.validateSource(props.source);
    const retain = props.retainReleases ?? 10;
    this.validateRetainReleases(retain);
    this.validateDomain(props.domainName, props.certificate);
    this.validateImmutablePaths(props.immutablePaths ?? []);
    const concurrency = props.uploadConcurrency ?? 16;
    this.validateConcurrency(concurrency);

    // 1. The release id: a hash of the built folder and of the routing rules.
    const pattern = immutablePattern(props.immutablePaths ?? [], props.detectHashedNames ?? true);
    this.sourceHash = hashFolder(props.source);
    this.releaseId = releaseIdOf(this.sourceHash, JSON.stringify({ pattern }));
    const destroy = props.removalPolicy === RemovalPolicy.DESTROY;

    // 2. Storage: the private bucket of releases and the KeyValueStore of the active release id.
    const bucket = this.createBucket(props, destroy);
    this.bucket = bucket;
    const store = new cloudfront.KeyValueStore(this, 'KeyValueStore', {
      comment: 'cdk-rollback VersionedSite: active and previous release ids',
    });
    this.keyValueStore = store;

    // 3. Serving: the router, the cache and header policies, the distribution and its read-only bucket policy.
    const dist = this.createDistribution(props, bucket, store);
    this.dist = dist;
    this.distribution = dist;
    this.grantOriginRead(bucket, dist);
    Annotations.of(dist).acknowledgeWarning('@aws-cdk/aws-cloudfront-origins:updateImportedBucketPolicyOac',
      'The construct writes the distribution\'s bucket policy itself, limited to releases/ and _pool/.');

    markForCli(bucket, this, 'VersionedSite', 'bucket');
    markForCli(dist, this, 'VersionedSite', 'distribution');
    markForCli(store, this, 'VersionedSite', 'key-value-store');

    // 4. The release: upload, pointer, invalidation, retention.
    this.createRelease(props, { bucket, dist, store, pattern, retain, concurrency, destroy });

    this.acknowledgeNag(props, bucket, dist);
  }

  /** The private bucket that holds every release and the shared pool. */
  private createBucket(props: VersionedSiteProps, destroy: boolean): s3.Bucket {
    const bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: destroy ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
      serverAccessLogsBucket: props.logBucket,
      serverAccessLogsPrefix: props.logBucket ? 's3/' : undefined,
    });
    return bucket;
  }

  /** The router (a CloudFront Function reading the KeyValueStore), cache and header policies, the distribution. */
  private createDistribution(props: VersionedSiteProps, bucket: s3.Bucket, store: cloudfront.KeyValueStore): cloudfront.Distribution {
    const spa = props.spaFallback ?? true;
    const router = new cloudfront.Function(this, 'Router', {
      code: cloudfront.FunctionCode.fromInline(renderRouterCode({
        immutablePaths: props.immutablePaths ?? [], detectHashedNames: props.detectHashedNames ?? true, spaFallback: spa,
      })),
      runtime: cloudfront.FunctionRuntime.JS_2_0,
      keyValueStore: store,
      comment: 'cdk-rollback VersionedSite router: routes each request into the active release',
    });

    const cachePolicy = new cloudfront.CachePolicy(this, 'CachePolicy', {
      comment: 'cdk-rollback VersionedSite: every cache key is an immutable release or pool object',
      // The router rewrites the URI before the cache lookup, so every cache key names immutable bytes:
      // cache for a year at the edge whatever Cache-Control tells browsers (HTML revalidates there).
      minTtl: Duration.days(365),
      defaultTtl: Duration.days(365),
      maxTtl: Duration.days(365),
      queryStringBehavior: cloudfront.CacheQueryStringBehavior.none(),
      headerBehavior: cloudfront.CacheHeaderBehavior.none(),
      cookieBehavior: cloudfront.CacheCookieBehavior.none(),
      enableAcceptEncodingGzip: true,
      enableAcceptEncodingBrotli: true,
    });

    const headers = new cloudfront.ResponseHeadersPolicy(this, 'ResponseHeaders', {
      comment: 'cdk-rollback VersionedSite security headers',
      securityHeadersBehavior: {
        strictTransportSecurity: { accessControlMaxAge: Duration.days(730), includeSubdomains: true, override: true },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN, override: true },
        xssProtection: { protection: true, modeBlock: true, override: true },
        ...(props.contentSecurityPolicy ? { contentSecurityPolicy: { contentSecurityPolicy: props.contentSecurityPolicy, override: true } } : {}),
      },
    });

    const originBucket = s3.Bucket.fromBucketAttributes(this, 'OriginBucket', {
      bucketArn: bucket.bucketArn, bucketName: bucket.bucketName, bucketRegionalDomainName: bucket.bucketRegionalDomainName,
    });
    const dist = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'cdk-rollback VersionedSite',
      defaultBehavior: {
        // The origin gets a reference to the bucket, so aws-cdk-lib adds no grant on the whole bucket:
        // the bucket policy below lets this distribution read releases and the pool, nothing else.
        origin: origins.S3BucketOrigin.withOriginAccessControl(originBucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
        cachedMethods: cloudfront.CachedMethods.CACHE_GET_HEAD_OPTIONS,
        compress: true,
        cachePolicy,
        responseHeadersPolicy: headers,
        functionAssociations: [{ function: router, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST }],
      },
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
      domainNames: props.domainName ? [props.domainName] : undefined,
      certificate: props.certificate,
      priceClass: props.priceClass,
      webAclId: props.webAclId,
      enableLogging: props.logBucket ? true : undefined,
      logBucket: props.logBucket,
      logFilePrefix: props.logBucket ? 'cloudfront/' : undefined,
    });
    return dist;
  }

  /** The release custom resource and the permissions of the shared release provider for this site. */
  private createRelease(props: VersionedSiteProps, site: {
    bucket: s3.Bucket; dist: cloudfront.Distribution; store: cloudfront.KeyValueStore;
    pattern: string; retain: number; concurrency: number; destroy: boolean;
  }): void {
    const { bucket, dist, store, pattern, retain, concurrency, destroy } = site;
    const asset = new s3assets.Asset(this, 'Source', { path: props.source });
    const provider = releaseProvider(Stack.of(this));
    const stack = Stack.of(this);
    const distributionArn = stack.formatArn({
      service: 'cloudfront', region: '', resource: 'distribution', resourceName: dist.distributionId,
    });
    provider.onEvent.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject'],
      resources: [stack.formatArn({ service: 's3', region: '', account: '', resource: asset.s3BucketName, resourceName: asset.s3ObjectKey })],
    }));
    provider.onEvent.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:ListBucket'], resources: [bucket.bucketArn],
    }));
    provider.onEvent.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], resources: [bucket.arnForObjects('*')],
    }));
    provider.onEvent.addToRolePolicy(new iam.PolicyStatement({
      actions: ['cloudfront-keyvaluestore:DescribeKeyValueStore', 'cloudfront-keyvaluestore:GetKey', 'cloudfront-keyvaluestore:UpdateKeys'],
      resources: [store.keyValueStoreArn],
    }));
    // Intent: the rollback Update is told apart from a forward Update by the stack's status.
    provider.onEvent.addToRolePolicy(new iam.PolicyStatement({
      actions: ['cloudformation:DescribeStacks'], resources: [stack.stackId],
    }));
    Validations.of(provider.onEvent.role!).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${logicalId(bucket)}.Arn>/*]`,
      reason: 'The release handler writes every release into the site bucket and prunes old ones: any object of that one bucket.',
    });
    for (const fn of [provider.onEvent, provider.isComplete]) {
      fn.addToRolePolicy(new iam.PolicyStatement({
        actions: fn === provider.onEvent ? ['cloudfront:CreateInvalidation', 'cloudfront:GetInvalidation'] : ['cloudfront:GetInvalidation'],
        resources: [distributionArn],
      }));
    }

    const release = new CustomResource(this, 'Release', {
      serviceToken: provider.provider.serviceToken,
      resourceType: 'Custom::CdkRollbackSiteRelease',
      properties: {
        BucketName: bucket.bucketName,
        DistributionId: dist.distributionId,
        KvsArn: store.keyValueStoreArn,
        AssetBucket: asset.s3BucketName,
        AssetKey: asset.s3ObjectKey,
        ReleaseId: this.releaseId,
        SourceHash: this.sourceHash,
        ImmutablePattern: pattern,
        RetainReleases: String(retain),
        WaitForInvalidation: String(props.waitForInvalidation ?? false),
        RemovalPolicy: destroy ? 'destroy' : 'retain',
        Concurrency: String(concurrency),
      },
    });
    // the grants above live in the shared functions' role policies
    release.node.addDependency(provider.onEvent, provider.isComplete);

  }


  /**
   * Adds a behaviour for other paths (an API, for example). The router and its SPA fallback stay on the
   * site's default behaviour only.
   */
  public addBehavior(pathPattern: string, origin: cloudfront.IOrigin, options?: cloudfront.AddBehaviorOptions): void {
    this.dist.addBehavior(pathPattern, origin, options);
  }

  /**
   * CloudFront (Origin Access Control, this distribution only) may read what the router serves: `releases/*` and
   * `_pool/*`. Never `_cdk-rollback/` (manifests, release history). `s3:ListBucket` makes S3 answer 404 instead
   * of 403 for a missing file; listing itself is limited to the same two prefixes (`s3:prefix`, present in every
   * ListObjects request). `IfExists`: the existence check S3 makes for a GetObject of a missing key is not a
   * listing and carries no prefix.
   */
  private grantOriginRead(bucket: s3.Bucket, dist: cloudfront.Distribution): void {
    const principals = [new iam.ServicePrincipal('cloudfront.amazonaws.com')];
    const fromThisDistribution = {
      'AWS:SourceArn': `arn:${Aws.PARTITION}:cloudfront::${Aws.ACCOUNT_ID}:distribution/${dist.distributionId}`,
    };
    const served = [SITE_RELEASES_PREFIX, SITE_POOL_PREFIX];
    bucket.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudFrontReadsReleasesAndPool',
      principals,
      actions: ['s3:GetObject'],
      resources: served.map((p) => bucket.arnForObjects(`${p}*`)),
      conditions: { StringEquals: fromThisDistribution },
    }));
    bucket.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudFrontListsReleasesAndPool',
      principals,
      actions: ['s3:ListBucket'],
      resources: [bucket.bucketArn],
      conditions: { StringEquals: fromThisDistribution, StringLikeIfExists: { 's3:prefix': served.map((p) => `${p}*`) } },
    }));
  }

  private validateSource(source: string | undefined): void {
    if (source === undefined || source === null || source === '') {
      throw new Error(`\`source\` must be the path of a folder of built files (for example 'dist'), got: ${JSON.stringify(source ?? null)}`);
    }
    if (!fs.existsSync(source)) {
      throw new Error(`\`source\` must be an existing folder of built files; build the site first, got: '${source}' (not found)`);
    }
    if (!fs.statSync(source).isDirectory()) {
      throw new Error(`\`source\` must be a folder of built files, not a file, got: '${source}'`);
    }
    if (listFiles(source).length === 0) {
      throw new Error(`\`source\` must hold at least one file; build the site first, got an empty folder: '${source}'`);
    }
  }

  private validateRetainReleases(retain: number): void {
    if (Token.isUnresolved(retain)) return;
    if (!Number.isInteger(retain) || retain < 2 || retain > 100) {
      throw new Error(`\`retainReleases\` must be an integer between 2 and 100 (the active and the previous release are always kept), got: ${retain}`);
    }
  }

  private validateDomain(domainName: string | undefined, certificate: acm.ICertificate | undefined): void {
    if (domainName !== undefined && !certificate) {
      throw new Error(`\`certificate\` is required when \`domainName\` is set (an ACM certificate in us-east-1 covering it), got: domainName '${domainName}' and no certificate`);
    }
    if (certificate && domainName === undefined) {
      throw new Error('`domainName` is required when `certificate` is set (the name the certificate covers), got: a certificate and no domainName');
    }
    if (domainName !== undefined && !Token.isUnresolved(domainName) && !/^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$/i.test(domainName)) {
      throw new Error(`\`domainName\` must be a DNS name like 'www.example.com', got: '${domainName}'`);
    }
  }

  private validateImmutablePaths(prefixes: readonly string[]): void {
    for (const p of prefixes) {
      if (Token.isUnresolved(p)) {
        throw new Error('`immutablePaths` must be literal folder prefixes (the router is generated at synth), got: a token');
      }
      if (!/^[^/*?]([^*?]*)\/$/.test(p) || p.includes('//') || p.split('/').includes('..')) {
        throw new Error(`\`immutablePaths\` entries must be folder prefixes like 'assets/' (relative, ending with '/', no wildcards), got: '${p}'`);
      }
    }
  }

  private validateConcurrency(n: number): void {
    if (Token.isUnresolved(n)) return;
    if (!Number.isInteger(n) || n < 1 || n > 64) {
      throw new Error(`\`uploadConcurrency\` must be an integer between 1 and 64, got: ${n}`);
    }
  }

  private acknowledgeNag(props: VersionedSiteProps, bucket: s3.Bucket, dist: cloudfront.Distribution): void {
    if (!props.logBucket) {
      Validations.of(bucket).acknowledge({ id: 'AwsSolutions-S1', reason: 'Server access logs are opt-in through `logBucket`; the bucket is private and only CloudFront (OAC) and the release handler reach it.' });
      Validations.of(dist).acknowledge({ id: 'AwsSolutions-CFR3', reason: 'Standard logs are opt-in through `logBucket`.' });
    }
    if (!props.webAclId) {
      Validations.of(dist).acknowledge({ id: 'AwsSolutions-CFR2', reason: 'A static site of immutable files; a WAF web ACL is opt-in through `webAclId`.' });
    }
    Validations.of(dist).acknowledge({ id: 'AwsSolutions-CFR1', reason: 'A public website: no geo restriction by default.' });
    if (!props.domainName) {
      Validations.of(dist).acknowledge({ id: 'AwsSolutions-CFR4', reason: 'Without `domainName` CloudFront serves its default *.cloudfront.net certificate, whose TLS policy cannot be set; with a domain the minimum is TLSv1.2_2021.' });
    }
  }
}

function logicalId(c: Construct): string {
  return Stack.of(c).getLogicalId(c.node.defaultChild as CfnResource);
}

interface ReleaseProvider {
  readonly provider: cr.Provider;
  readonly onEvent: lambda.Function;
  readonly isComplete: lambda.Function;
}

/** One provider per stack, shared by every VersionedSite in it. */
function releaseProvider(stack: Stack): ReleaseProvider {
  const existing = stack.node.tryFindChild(PROVIDER_ID) as ReleaseProviderConstruct | undefined;
  return existing ?? new ReleaseProviderConstruct(stack, PROVIDER_ID);
}

class ReleaseProviderConstruct extends Construct implements ReleaseProvider {
  public readonly provider: cr.Provider;
  public readonly onEvent: lambda.Function;
  public readonly isComplete: lambda.Function;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    const code = handlerCode('site-release');
    const fn = (fid: string, handler: string, timeout: Duration, memorySize: number) => {
      const role = new iam.Role(this, `${fid}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn, `${logGroup.logGroupArn}:log-stream:*`],
      }));
      const f = new lambda.Function(this, fid, {
        code, handler, runtime: lambda.Runtime.NODEJS_22_X, timeout, memorySize, role, logGroup,
        architecture: lambda.Architecture.ARM_64,
        description: `cdk-rollback VersionedSite release (${handler})`,
      });
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${logicalId(logGroup)}.Arn>:log-stream:*]`,
        reason: 'The handler writes its log streams, whose names Lambda picks, in its own log group.',
      });
      Validations.of(f).acknowledge({ id: 'AwsSolutions-L1', reason: 'cdk-rollback handlers target the Node.js 22 runtime they are bundled and tested for.' });
      return f;
    };
    this.onEvent = fn('OnEvent', 'index.onEvent', Duration.minutes(15), 1024);
    this.isComplete = fn('IsComplete', 'index.isComplete', Duration.minutes(1), 256);
    this.provider = new cr.Provider(this, 'Provider', {
      onEventHandler: this.onEvent,
      isCompleteHandler: this.isComplete,
      queryInterval: Duration.seconds(15),
      totalTimeout: Duration.minutes(30),
      logGroup,
      disableWaiterStateMachineLogging: false,
      waiterStateMachineLogOptions: { destination: logGroup, level: sfn.LogLevel.ALL },
    });
    acknowledgeProviderFramework(this.provider, [this.onEvent, this.isComplete]);
  }
}
