import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, RemovalPolicy, Stack, Stage, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { VersionedSite, VersionedSiteProps } from '../lib/versioned-site';
import { synthAndValidate } from './helpers/synth-and-validate';

const BUILD = path.join(__dirname, 'fixtures', 'site', 'build');

function site(props: Partial<VersionedSiteProps> = {}, stack = new Stack(new App(), 'S')): { stack: Stack; site: VersionedSite } {
  return { stack, site: new VersionedSite(stack, 'Site', { source: BUILD, ...props }) };
}

function template(props: Partial<VersionedSiteProps> = {}): Template {
  return Template.fromStack(site(props).stack);
}

function copyBuild(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'site-build-'));
  fs.cpSync(BUILD, dir, { recursive: true });
  return dir;
}

describe('VersionedSite', () => {
  test('passes cdk-nag and cfn-lint in an env-agnostic stack inside a Stage', () => {
    // GIVEN
    const app = new App();
    const stage = new Stage(app, 'Prod');
    const stack = new Stack(stage, 'Web');
    // WHEN
    new VersionedSite(stack, 'Site', { source: BUILD });
    // THEN
    const { templates } = synthAndValidate(app);
    expect(Object.keys(templates)).toEqual(['Prod/Web']);
  });

  test('passes cdk-nag and cfn-lint with a custom domain, logs and two sites sharing one provider', () => {
    const app = new App({ context: { '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true } });
    const stack = new Stack(app, 'Web', { env: { account: '123456789012', region: 'us-east-1' } });
    const certificate = acm.Certificate.fromCertificateArn(stack, 'Cert', 'arn:aws:acm:us-east-1:123456789012:certificate/abc');
    const logs = new s3.Bucket(stack, 'Logs', { enforceSSL: true, objectOwnership: s3.ObjectOwnership.OBJECT_WRITER });
    Validations.of(logs).acknowledge({ id: 'AwsSolutions-S1', reason: 'the log bucket itself' });
    new VersionedSite(stack, 'Site', { source: BUILD, domainName: 'www.example.com', certificate, logBucket: logs });
    new VersionedSite(stack, 'Docs', { source: BUILD, removalPolicy: RemovalPolicy.DESTROY });
    const { templates } = synthAndValidate(app);
    const t = templates.Web;
    t.resourceCountIs('AWS::Lambda::Function', 5); // onEvent + isComplete + 3 Provider framework functions, once per stack
    t.resourceCountIs('Custom::CdkRollbackSiteRelease', 2);
    t.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Aliases: ['www.example.com'],
        ViewerCertificate: { AcmCertificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc', MinimumProtocolVersion: 'TLSv1.2_2021', SslSupportMethod: 'sni-only' },
        Logging: Match.objectLike({ Prefix: 'cloudfront/' }),
      }),
    });
  });

  test('creates a private, encrypted, SSL-only, bucket-owner-enforced bucket kept on delete', () => {
    const t = template();
    t.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: {
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      },
    });
    t.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  test('CloudFront may read releases/ and _pool/ only (not the manifests and history under _cdk-rollback/), from this distribution only', () => {
    const t = template();
    const bucketArn = { 'Fn::GetAtt': [Match.stringLikeRegexp('^SiteBucket'), 'Arn'] };
    const fromThisDistribution = {
      'AWS:SourceArn': {
        'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':cloudfront::', { Ref: 'AWS::AccountId' }, ':distribution/', { Ref: Match.stringLikeRegexp('^SiteDistribution') }]],
      },
    };
    const policies = t.findResources('AWS::S3::BucketPolicy');
    expect(Object.keys(policies)).toHaveLength(1);
    // exactly these statements: SSL only, then the two CloudFront grants
    Template.fromJSON({ Resources: policies }).hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          {
            Sid: 'CloudFrontReadsReleasesAndPool',
            Effect: 'Allow',
            Principal: { Service: 'cloudfront.amazonaws.com' },
            Action: 's3:GetObject',
            Resource: [{ 'Fn::Join': ['', [bucketArn, '/releases/*']] }, { 'Fn::Join': ['', [bucketArn, '/_pool/*']] }],
            Condition: { StringEquals: fromThisDistribution },
          },
          {
            Sid: 'CloudFrontListsReleasesAndPool',
            Effect: 'Allow',
            Principal: { Service: 'cloudfront.amazonaws.com' },
            Action: 's3:ListBucket',
            Resource: bucketArn,
            Condition: { StringEquals: fromThisDistribution, StringLikeIfExists: { 's3:prefix': ['releases/*', '_pool/*'] } },
          },
        ],
      },
    });
  });

  test('removalPolicy DESTROY deletes the bucket and tells the handler to empty it', () => {
    const t = template({ removalPolicy: RemovalPolicy.DESTROY });
    t.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete' });
    t.hasResourceProperties('Custom::CdkRollbackSiteRelease', { RemovalPolicy: 'destroy' });
  });

  test('serves through Origin Access Control (not OAI), HTTP/2+3, and security headers', () => {
    const t = template();
    t.resourceCountIs('AWS::CloudFront::OriginAccessControl', 1);
    t.resourceCountIs('AWS::CloudFront::CloudFrontOriginAccessIdentity', 0);
    t.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        HttpVersion: 'http2and3',
        Origins: [Match.objectLike({ OriginAccessControlId: Match.anyValue(), S3OriginConfig: { OriginAccessIdentity: '' } })],
        DefaultCacheBehavior: Match.objectLike({
          ViewerProtocolPolicy: 'redirect-to-https',
          FunctionAssociations: [{ EventType: 'viewer-request', FunctionARN: Match.anyValue() }],
        }),
      }),
    });
    // no distribution-wide error rewriting
    const dist = Object.values(t.findResources('AWS::CloudFront::Distribution'))[0];
    expect(dist.Properties.DistributionConfig.CustomErrorResponses).toBeUndefined();
    expect(dist.Properties.DistributionConfig.DefaultRootObject).toBeUndefined();
    t.hasResourceProperties('AWS::CloudFront::ResponseHeadersPolicy', {
      ResponseHeadersPolicyConfig: Match.objectLike({
        SecurityHeadersConfig: Match.objectLike({
          StrictTransportSecurity: Match.objectLike({ AccessControlMaxAgeSec: 63072000, IncludeSubdomains: true }),
          ContentTypeOptions: { Override: true },
          FrameOptions: { FrameOption: 'DENY', Override: true },
        }),
      }),
    });
  });

  test('routes with a cloudfront-js-2.0 viewer-request function bound to the KeyValueStore, well under 2 KB', () => {
    const t = template();
    const fns = Object.values(t.findResources('AWS::CloudFront::Function'));
    expect(fns).toHaveLength(1);
    const cfg = fns[0].Properties;
    expect(cfg.FunctionConfig.Runtime).toBe('cloudfront-js-2.0');
    expect(cfg.FunctionConfig.KeyValueStoreAssociations).toHaveLength(1);
    expect(Buffer.byteLength(cfg.FunctionCode)).toBeLessThan(2048);
    t.resourceCountIs('AWS::CloudFront::KeyValueStore', 1);
  });

  test('caches every rewritten key for a year at the edge (release and pool keys are immutable)', () => {
    template().hasResourceProperties('AWS::CloudFront::CachePolicy', {
      CachePolicyConfig: Match.objectLike({ MinTTL: 31536000, DefaultTTL: 31536000, MaxTTL: 31536000 }),
    });
  });

  test('forwards no query string, header or cookie to the bucket and keeps them out of the cache key', () => {
    const t = template();
    t.hasResourceProperties('AWS::CloudFront::CachePolicy', {
      CachePolicyConfig: Match.objectLike({
        ParametersInCacheKeyAndForwardedToOrigin: {
          QueryStringsConfig: { QueryStringBehavior: 'none' },
          HeadersConfig: { HeaderBehavior: 'none' },
          CookiesConfig: { CookieBehavior: 'none' },
          EnableAcceptEncodingGzip: true,
          EnableAcceptEncodingBrotli: true,
        },
      }),
    });
    const dist = Object.values(t.findResources('AWS::CloudFront::Distribution'))[0];
    expect(dist.Properties.DistributionConfig.DefaultCacheBehavior.OriginRequestPolicyId).toBeUndefined();
  });

  test('marks the bucket, the distribution and the KeyValueStore for the CLI', () => {
    const t = template();
    const meta = (type: string) => Object.values(t.findResources(type))[0].Metadata['cdk-rollback'];
    expect(meta('AWS::S3::Bucket')).toEqual({ version: 1, kind: 'VersionedSite', role: 'bucket', path: 'S/Site' });
    expect(meta('AWS::CloudFront::Distribution')).toEqual({ version: 1, kind: 'VersionedSite', role: 'distribution', path: 'S/Site' });
    expect(meta('AWS::CloudFront::KeyValueStore')).toEqual({ version: 1, kind: 'VersionedSite', role: 'key-value-store', path: 'S/Site' });
  });

  test('the release custom resource gets a content-hash release id, the layout rule and the defaults', () => {
    const { stack, site: s } = site();
    Template.fromStack(stack).hasResourceProperties('Custom::CdkRollbackSiteRelease', {
      ReleaseId: s.releaseId, SourceHash: s.sourceHash, RetainReleases: '10', WaitForInvalidation: 'false', RemovalPolicy: 'retain',
      Concurrency: '16', ImmutablePattern: Match.stringLikeRegexp('A-Za-z0-9'),
    });
    expect(s.releaseId).toMatch(/^[0-9a-f]{20}$/);
  });

  test('the same build in another folder gives the same release id; a changed file gives a new one', () => {
    const a = site().site;
    const copy = copyBuild();
    const b = site({ source: copy }).site;
    expect(b.releaseId).toBe(a.releaseId);
    fs.writeFileSync(path.join(copy, 'index.html'), '<html>v2</html>');
    expect(site({ source: copy }).site.releaseId).not.toBe(a.releaseId);
    expect(site({ immutablePaths: ['assets/'] }).site.releaseId).not.toBe(a.releaseId);
  });

  test('synth is byte-identical on every run and holds no absolute path', () => {
    const synth = (source: string) => {
      const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-out-')) });
      const stack = new Stack(app, 'S');
      new VersionedSite(stack, 'Site', { source });
      return JSON.stringify(app.synth().getStackByName('S').template);
    };
    const one = synth(BUILD);
    expect(synth(copyBuild())).toBe(one);
    expect(one).not.toContain(__dirname);
    expect(one).not.toContain(os.tmpdir());
  });

  test('scopes the handler IAM to the asset key, the site bucket, the KeyValueStore and the distribution', () => {
    const t = template();
    const policies = Object.values(t.findResources('AWS::IAM::Policy')).map((p) => JSON.stringify(p.Properties.PolicyDocument));
    const onEvent = policies.find((p) => p.includes('cloudfront-keyvaluestore:UpdateKeys'))!;
    expect(onEvent).toBeDefined();
    expect(onEvent).toContain('cloudfront:CreateInvalidation');
    expect(onEvent).not.toContain('"Resource":"*"');
    expect(onEvent).toMatch(/:distribution\//);
  });

  test('the release handler may read the status of its own stack only (rollback detection)', () => {
    const t = template();
    const policies = Object.values(t.findResources('AWS::IAM::Policy')).map((p) => p.Properties.PolicyDocument as { Statement: object[] });
    const onEvent = policies.find((p) => JSON.stringify(p).includes('cloudfront-keyvaluestore:UpdateKeys'))!;
    expect(onEvent.Statement).toContainEqual({ Action: 'cloudformation:DescribeStacks', Effect: 'Allow', Resource: { Ref: 'AWS::StackId' } });
  });

  test('waitForInvalidation, retainReleases and uploadConcurrency reach the handler', () => {
    template({ waitForInvalidation: true, retainReleases: 3, uploadConcurrency: 4 }).hasResourceProperties('Custom::CdkRollbackSiteRelease', {
      WaitForInvalidation: 'true', RetainReleases: '3', Concurrency: '4',
    });
  });

  test('a Content-Security-Policy is added when given', () => {
    template({ contentSecurityPolicy: "default-src 'self'" }).hasResourceProperties('AWS::CloudFront::ResponseHeadersPolicy', {
      ResponseHeadersPolicyConfig: Match.objectLike({
        SecurityHeadersConfig: Match.objectLike({ ContentSecurityPolicy: { ContentSecurityPolicy: "default-src 'self'", Override: true } }),
      }),
    });
  });

  test('addBehavior adds a behaviour without the router', () => {
    const { stack, site: s } = site();
    s.addBehavior('/api/*', new origins.HttpOrigin('api.example.com'));
    Template.fromStack(stack).hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        CacheBehaviors: [Match.objectLike({ PathPattern: '/api/*', FunctionAssociations: Match.absent() })],
      }),
    });
  });
});

describe('VersionedSite validation', () => {
  const fails = (props: Partial<VersionedSiteProps>) => () => site(props);

  test('a missing source', () => {
    expect(fails({ source: undefined as unknown as string })).toThrow("`source` must be the path of a folder of built files (for example 'dist'), got: null");
  });
  test('an empty source string', () => {
    expect(fails({ source: '' })).toThrow("`source` must be the path of a folder of built files (for example 'dist'), got: \"\"");
  });
  test('a source folder that does not exist', () => {
    expect(fails({ source: '/no/such/build' })).toThrow("`source` must be an existing folder of built files; build the site first, got: '/no/such/build' (not found)");
  });
  test('a source that is a file', () => {
    const file = path.join(BUILD, 'robots.txt');
    expect(fails({ source: file })).toThrow(`\`source\` must be a folder of built files, not a file, got: '${file}'`);
  });
  test('an empty source folder', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'empty-'));
    fs.mkdirSync(path.join(dir, 'sub'));
    expect(fails({ source: dir })).toThrow(`\`source\` must hold at least one file; build the site first, got an empty folder: '${dir}'`);
  });
  test('retainReleases below 2', () => {
    expect(fails({ retainReleases: 1 })).toThrow('`retainReleases` must be an integer between 2 and 100 (the active and the previous release are always kept), got: 1');
  });
  test('retainReleases above 100 or fractional', () => {
    expect(fails({ retainReleases: 101 })).toThrow('`retainReleases` must be an integer between 2 and 100 (the active and the previous release are always kept), got: 101');
    expect(fails({ retainReleases: 2.5 })).toThrow('got: 2.5');
  });
  test('a domainName without a certificate', () => {
    expect(fails({ domainName: 'www.example.com' })).toThrow("`certificate` is required when `domainName` is set (an ACM certificate in us-east-1 covering it), got: domainName 'www.example.com' and no certificate");
  });
  test('a certificate without a domainName', () => {
    const stack = new Stack(new App(), 'S');
    const certificate = acm.Certificate.fromCertificateArn(stack, 'C', 'arn:aws:acm:us-east-1:123456789012:certificate/abc');
    expect(() => site({ certificate }, stack)).toThrow('`domainName` is required when `certificate` is set (the name the certificate covers), got: a certificate and no domainName');
  });
  test('a domainName that is not a DNS name', () => {
    const stack = new Stack(new App(), 'S');
    const certificate = acm.Certificate.fromCertificateArn(stack, 'C', 'arn:aws:acm:us-east-1:123456789012:certificate/abc');
    expect(() => site({ certificate, domainName: 'https://x' }, stack)).toThrow("`domainName` must be a DNS name like 'www.example.com', got: 'https://x'");
  });
  test('an immutablePaths entry that is not a relative folder prefix', () => {
    const msg = (p: string) => `\`immutablePaths\` entries must be folder prefixes like 'assets/' (relative, ending with '/', no wildcards), got: '${p}'`;
    expect(fails({ immutablePaths: ['/assets/'] })).toThrow(msg('/assets/'));
    expect(fails({ immutablePaths: ['assets'] })).toThrow(msg('assets'));
    expect(fails({ immutablePaths: ['assets/*'] })).toThrow(msg('assets/*'));
  });
  test('uploadConcurrency out of range', () => {
    expect(fails({ uploadConcurrency: 0 })).toThrow('`uploadConcurrency` must be an integer between 1 and 64, got: 0');
  });
});
