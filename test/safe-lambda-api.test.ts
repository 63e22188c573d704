import { App, Duration, Stack, Stage } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { ApiType, SafeLambdaApi, SafeLambdaApiProps } from '../lib';
import { acknowledgePublicApi, userFunction } from './helpers/fixtures';
import { synthAndValidate } from './helpers/synth-and-validate';

function setup(props: Partial<SafeLambdaApiProps> = {}, fnProps: Partial<lambda.FunctionProps> = {}) {
  const app = new App();
  const stack = new Stack(app, 'Stack');
  const handler = userFunction(stack, 'Handler', fnProps);
  const api = new SafeLambdaApi(stack, 'Api', { handler, ...props });
  return { app, stack, handler, api, template: () => Template.fromStack(stack) };
}

function versionDescription(fnProps: Partial<lambda.FunctionProps>): string {
  const t = setup({}, fnProps).template();
  const versions = t.findResources('AWS::Lambda::Version');
  return Object.values(versions)[0].Properties.Description;
}

describe('1. versions', () => {
  test('publishes a version kept on removal and replacement, so old versions stay for rollback', () => {
    const t = setup().template();
    t.resourceCountIs('AWS::Lambda::Version', 1);
    t.hasResource('AWS::Lambda::Version', {
      Properties: { FunctionName: { Ref: Match.stringLikeRegexp('^Handler') }, Description: Match.stringLikeRegexp('^cdk-rollback [0-9a-f]{32}$') },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test.each<[string, Partial<lambda.FunctionProps>]>([
    ['code', { code: lambda.Code.fromInline('exports.handler = async () => ({ statusCode: 201 });') }],
    ['environment', { environment: { FEATURE: 'on' } }],
    ['memory', { memorySize: 1024 }],
    ['timeout', { timeout: Duration.seconds(9) }],
  ])('a change of %s publishes a new version', (_what, change) => {
    expect(versionDescription(change)).not.toBe(versionDescription({}));
  });

  test('a change of layers publishes a new version', () => {
    const withLayer = setup();
    const bucket = s3.Bucket.fromBucketName(withLayer.stack, 'Artifacts', 'artifacts');
    const layer = new lambda.LayerVersion(withLayer.stack, 'Layer', { code: lambda.Code.fromBucket(bucket, 'layer.zip') });
    withLayer.handler.addLayers(layer);
    const a = Object.values(withLayer.template().findResources('AWS::Lambda::Version'))[0].Properties.Description;
    expect(a).not.toBe(versionDescription({}));
  });

  test('environment added after the SafeLambdaApi still counts (the fingerprint is taken at synth)', () => {
    const late = setup();
    late.handler.addEnvironment('LATE', '1');
    const a = Object.values(late.template().findResources('AWS::Lambda::Version'))[0].Properties.Description;
    expect(a).toBe(versionDescription({ environment: { LATE: '1' } }));
  });

  test('the same code and configuration keep the same version', () => {
    expect(versionDescription({ memorySize: 512 })).toBe(versionDescription({ memorySize: 512 }));
  });

  test('retainVersions reaches the deployment custom resource (default 10)', () => {
    setup().template().hasResourceProperties('Custom::CdkRollbackAliasDeployment', { RetainVersions: '10' });
    setup({ retainVersions: 4 }).template().hasResourceProperties('Custom::CdkRollbackAliasDeployment', { RetainVersions: '4' });
  });
});

describe('2. alias live and API Gateway', () => {
  test('REST API by default: root and proxy methods integrated with the live alias', () => {
    const t = setup().template();
    t.resourceCountIs('AWS::ApiGateway::RestApi', 1);
    t.resourceCountIs('AWS::ApiGateway::Method', 2);
    t.allResourcesProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'ANY',
      Integration: {
        Type: 'AWS_PROXY',
        IntegrationHttpMethod: 'POST',
        Uri: { 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp(':live/invocations$')])] },
      },
    });
  });

  test('HTTP API with apiType HTTP: payload format 2.0 on the live alias', () => {
    const t = setup({ apiType: ApiType.HTTP }).template();
    t.resourceCountIs('AWS::ApiGateway::RestApi', 0);
    t.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationType: 'AWS_PROXY',
      PayloadFormatVersion: '2.0',
      IntegrationUri: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Handler'), 'Arn'] }, ':live']] },
    });
    t.hasResourceProperties('AWS::ApiGatewayV2::Stage', { StageName: '$default', AutoDeploy: true, AccessLogSettings: Match.anyValue() });
  });

  test.each([ApiType.REST, ApiType.HTTP])('%s: one consolidated invoke permission, on the alias', (apiType) => {
    const t = setup({ apiType }).template();
    t.resourceCountIs('AWS::Lambda::Permission', 1);
    t.hasResource('AWS::Lambda::Permission', {
      Properties: {
        Action: 'lambda:InvokeFunction',
        Principal: 'apigateway.amazonaws.com',
        FunctionName: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Handler'), 'Arn'] }, ':live']] },
        SourceArn: { 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('/\\*$')])] },
      },
      DependsOn: Match.arrayWith([Match.stringLikeRegexp('^ApiDeployment')]),
    });
  });

  test('no CloudFormation-managed alias and no CodeDeployLambdaAliasUpdate policy (SAM#291)', () => {
    const t = setup().template();
    t.resourceCountIs('AWS::Lambda::Alias', 0);
    expect(JSON.stringify(t.toJSON())).not.toContain('CodeDeployLambdaAliasUpdate');
  });

  test('REST access logs go to a log group with retention', () => {
    const t = setup().template();
    t.hasResourceProperties('AWS::ApiGateway::Stage', { AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.anyValue() } });
    t.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  test('an authorizer protects both REST methods', () => {
    const { stack, api, template } = setup();
    void api;
    const t = template();
    void stack;
    t.allResourcesProperties('AWS::ApiGateway::Method', { AuthorizationType: 'NONE' });
    const app2 = new App();
    const stack2 = new Stack(app2, 'S');
    const authFn = userFunction(stack2, 'Auth');
    new SafeLambdaApi(stack2, 'Api', {
      handler: userFunction(stack2, 'Handler'),
      authorizer: new apigateway.TokenAuthorizer(stack2, 'Authorizer', { handler: authFn }),
    });
    Template.fromStack(stack2).allResourcesProperties('AWS::ApiGateway::Method', { AuthorizationType: 'CUSTOM' });
  });
});

describe('3. traffic shifting by CodeDeploy', () => {
  test('a Lambda deployment group, canary 10% for 5 minutes by default, auto rollback on failure, alarm and stop', () => {
    const t = setup().template();
    t.hasResourceProperties('AWS::CodeDeploy::Application', { ComputePlatform: 'Lambda' });
    t.hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', {
      DeploymentConfigName: 'CodeDeployDefault.LambdaCanary10Percent5Minutes',
      DeploymentStyle: { DeploymentType: 'BLUE_GREEN', DeploymentOption: 'WITH_TRAFFIC_CONTROL' },
      AutoRollbackConfiguration: { Enabled: true, Events: ['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_ALARM', 'DEPLOYMENT_STOP_ON_REQUEST'] },
      AlarmConfiguration: { Enabled: true, Alarms: Match.arrayWith([{ Name: { Ref: Match.stringLikeRegexp('^ApiErrorRateAlarm') } }]) },
    });
  });

  test('uses the given deploymentConfig', () => {
    setup({ deploymentConfig: codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_1MINUTE }).template()
      .hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', { DeploymentConfigName: 'CodeDeployDefault.LambdaLinear10PercentEvery1Minute' });
  });

  test('CodeDeploy\'s role may move only the live alias', () => {
    setup().template().hasResourceProperties('AWS::IAM::Policy', {
      PolicyName: Match.stringLikeRegexp('^ApiCodeDeployRole'),
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Action: ['lambda:GetAlias', 'lambda:UpdateAlias', 'lambda:GetProvisionedConcurrencyConfig'],
        Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Handler'), 'Arn'] }, ':live']] },
      })]) },
    });
  });
});

describe('4. alarms scoped to the new version', () => {
  const versionDims = Match.arrayWith([
    { Name: 'ExecutedVersion', Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ApiVersion'), 'Version'] } },
    { Name: 'Resource', Value: { 'Fn::Join': ['', [{ Ref: Match.stringLikeRegexp('^Handler') }, ':live']] } },
  ]);

  test('error rate > 1 %: errors / invocations of the new version, 3 of 5 one-minute periods', () => {
    setup().template().hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 1,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 5,
      DatapointsToAlarm: 3,
      TreatMissingData: 'notBreaching',
      Metrics: Match.arrayWith([
        Match.objectLike({ Expression: '100 * errors / MAX([invocations, 1])' }),
        Match.objectLike({ Id: 'errors', MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'Errors', Dimensions: versionDims }), Period: 60 }) }),
        Match.objectLike({ Id: 'invocations', MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'Invocations', Dimensions: versionDims }) }) }),
      ]),
    });
  });

  test('p99 latency > 500 ms and throttles of the new version', () => {
    const t = setup().template();
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'Duration', ExtendedStatistic: 'p99', Threshold: 500, Period: 60, Dimensions: versionDims,
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'Throttles', Statistic: 'Sum', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', Dimensions: versionDims,
    });
  });

  test('API Gateway 5XX rate > 1 % (REST: 5XXError / Count by ApiName; HTTP: 5xx / Count by ApiId)', () => {
    setup().template().hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 1,
      Metrics: Match.arrayWith([Match.objectLike({ Id: 'errors', MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: '5XXError', Namespace: 'AWS/ApiGateway' }) }) })]),
    });
    setup({ apiType: ApiType.HTTP }).template().hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: Match.arrayWith([Match.objectLike({ Id: 'errors', MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: '5xx', Dimensions: [{ Name: 'ApiId', Value: Match.anyValue() }] }) }) })]),
    });
  });

  test('thresholds and the alarm window are configurable', () => {
    const t = setup({
      errorRateThreshold: 2.5,
      latencyP99Threshold: Duration.seconds(2),
      throttlesThreshold: 10,
      api5xxRateThreshold: 5,
      alarmPeriod: Duration.seconds(30),
      alarmEvaluationPeriods: 4,
      alarmDatapoints: 2,
    }).template();
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { Threshold: 2.5, EvaluationPeriods: 4, DatapointsToAlarm: 2 });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Duration', Threshold: 2000, Period: 30 });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Throttles', Threshold: 10 });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { Threshold: 5, Metrics: Match.arrayWith([Match.objectLike({ Expression: '100 * errors / MAX([requests, 1])' })]) });
  });

  test('addAlarm adds the user\'s alarm to the deployment group, also after construction', () => {
    const { stack, api, template } = setup();
    const mine = new cloudwatch.Alarm(stack, 'Mine', {
      metric: new cloudwatch.Metric({ namespace: 'Shop', metricName: 'FailedOrders' }), threshold: 1, evaluationPeriods: 1,
    });
    api.addAlarm(mine);
    expect(api.alarms).toHaveLength(5);
    template().hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', {
      AlarmConfiguration: { Alarms: Match.arrayWith([{ Name: { Ref: Match.stringLikeRegexp('^Mine') } }]) },
    });
  });

  test.each<[string, codedeploy.ILambdaDeploymentConfig, string]>([
    ['all at once', codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE, '`deploymentConfig` CodeDeployDefault.LambdaAllAtOnce bakes the new version for 0 s before it takes all traffic, shorter than the 3 alarm periods of 1 min (3 min) the alarms need to fire: the alarms could not roll it back. Choose a canary or linear config that bakes longer, or lower `alarmPeriod` / `alarmDatapoints`'],
  ])('synth fails when the bake time is shorter than three alarm periods (%s)', (_name, deploymentConfig, message) => {
    expect(() => setup({ deploymentConfig })).toThrow(message);
  });

  test('the bake-time check also reads a custom canary config defined in the app', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    const config = new codedeploy.LambdaDeploymentConfig(stack, 'Config', {
      trafficRouting: codedeploy.TrafficRouting.timeBasedCanary({ interval: Duration.minutes(2), percentage: 5 }),
    });
    expect(() => new SafeLambdaApi(stack, 'Api', { handler: userFunction(stack, 'H'), deploymentConfig: config }))
      .toThrow(/bakes the new version for 2 min before it takes all traffic, shorter than the 3 alarm periods of 1 min \(3 min\)/);
    // a shorter alarm period makes it fit
    expect(() => new SafeLambdaApi(stack, 'Api2', {
      handler: userFunction(stack, 'H2'), deploymentConfig: config, alarmPeriod: Duration.seconds(30),
    })).not.toThrow();
  });
});

describe('5. health hooks', () => {
  test('the smoke test is the BeforeAllowTraffic hook and tests the new version', () => {
    const t = setup({ smokeTest: { path: '/health', expectedStatus: 204, method: 'head' } }).template();
    t.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Timeout: 60,
      Environment: { Variables: {
        FUNCTION_NAME: { Ref: Match.stringLikeRegexp('^Handler') },
        SMOKE_PATH: '/health', SMOKE_METHOD: 'HEAD', SMOKE_EXPECTED_STATUS: '204', PAYLOAD_FORMAT: '1.0', SMOKE_TIMEOUT_MS: '30000',
      } },
    });
    t.hasResourceProperties('Custom::CdkRollbackAliasDeployment', { BeforeAllowTrafficHook: { Ref: Match.stringLikeRegexp('^ApiSmokeTest') } });
    // IAM: report to CodeDeploy, read the deployment target, invoke any version of the handler
    t.hasResourceProperties('AWS::IAM::Policy', { PolicyDocument: { Statement: Match.arrayWith([
      Match.objectLike({ Action: 'codedeploy:PutLifecycleEventHookExecutionStatus' }),
      Match.objectLike({ Action: 'lambda:InvokeFunction', Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Handler'), 'Arn'] }, ':*']] } }),
    ]) } });
    t.hasResourceProperties('AWS::IAM::Policy', { PolicyDocument: { Statement: Match.arrayWith([
      Match.objectLike({ Action: ['codedeploy:ListDeploymentTargets', 'codedeploy:GetDeploymentTarget'] }),
    ]) } });
    // CodeDeploy may invoke the hook
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyName: Match.stringLikeRegexp('^ApiCodeDeployRole'),
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Action: 'lambda:InvokeFunction', Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ApiSmokeTest'), 'Arn'] },
      })]) },
    });
  });

  test('user hooks are wired with their IAM', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    const pre = userFunction(stack, 'Pre');
    const post = userFunction(stack, 'Post');
    new SafeLambdaApi(stack, 'Api', { handler: userFunction(stack, 'H'), preTrafficHook: pre, postTrafficHook: post });
    const t = Template.fromStack(stack);
    t.hasResourceProperties('Custom::CdkRollbackAliasDeployment', {
      BeforeAllowTrafficHook: { Ref: Match.stringLikeRegexp('^Pre[A-F0-9]') },
      AfterAllowTrafficHook: { Ref: Match.stringLikeRegexp('^Post[A-F0-9]') },
    });
    for (const hook of ['Pre', 'Post']) {
      t.hasResourceProperties('AWS::IAM::Policy', {
        Roles: [{ Ref: Match.stringLikeRegexp(`^${hook}Role`) }],
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 'codedeploy:PutLifecycleEventHookExecutionStatus' })]) },
      });
    }
  });

  test('no hook: the hook properties are empty', () => {
    setup().template().hasResourceProperties('Custom::CdkRollbackAliasDeployment', { BeforeAllowTrafficHook: '', AfterAllowTrafficHook: '' });
  });
});

describe('6-8. the deployment custom resource', () => {
  test('creates the deployment from the version live actually serves, inside CloudFormation\'s hour', () => {
    const t = setup().template();
    t.hasResourceProperties('Custom::CdkRollbackAliasDeployment', {
      FunctionName: { Ref: Match.stringLikeRegexp('^Handler') },
      TargetVersion: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ApiVersion'), 'Version'] },
      ApplicationName: { Ref: Match.stringLikeRegexp('^ApiApplication') },
      DeploymentGroupName: { Ref: Match.stringLikeRegexp('^ApiDeploymentGroup') },
      ConstructPath: 'Stack/Api',
      // canary 5 min + 3 min overhead, + 5 min margin
      MaxDeploymentSeconds: String((5 + 3 + 5) * 60),
      ServiceTimeout: '3540',
    });
    // Provider framework with onEvent + isComplete
    t.hasResourceProperties('AWS::Lambda::Function', { Handler: 'index.onEvent', Runtime: 'nodejs24.x' });
    t.hasResourceProperties('AWS::Lambda::Function', { Handler: 'index.isComplete', Runtime: 'nodejs24.x' });
    t.hasResourceProperties('AWS::StepFunctions::StateMachine', { LoggingConfiguration: Match.objectLike({ Level: 'ALL' }) });
  });

  test('one provider per stack, whatever the number of APIs', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    new SafeLambdaApi(stack, 'A', { handler: userFunction(stack, 'H1') });
    new SafeLambdaApi(stack, 'B', { handler: userFunction(stack, 'H2') });
    const t = Template.fromStack(stack);
    t.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
    t.resourcePropertiesCountIs('AWS::Lambda::Function', { Handler: 'index.onEvent' }, 1);
  });

  test('the provider may deploy, read and prune only this function\'s aliases and versions', () => {
    setup().template().hasResourceProperties('AWS::IAM::Policy', {
      PolicyName: Match.stringLikeRegexp('^ApiDeploymentPolicy'),
      PolicyDocument: { Statement: Match.arrayWith([
        Match.objectLike({
          Action: ['lambda:GetAlias', 'lambda:CreateAlias', 'lambda:UpdateAlias', 'lambda:DeleteFunction'],
          Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Handler'), 'Arn'] }, ':*']] },
        }),
        Match.objectLike({ Action: Match.arrayWith(['codedeploy:CreateDeployment', 'codedeploy:StopDeployment']) }),
      ]) },
    });
  });

  test('a deployment longer than a custom resource can wait fails synth', () => {
    expect(() => setup({ deploymentConfig: codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_10MINUTES }))
      .toThrow('a deployment of Stack/Api may take 93 minutes (traffic shifting by `deploymentConfig` ' +
        'CodeDeployDefault.LambdaLinear10PercentEvery10Minutes: 90 min, hooks: 0 min), more than the 45 minutes a CloudFormation ' +
        'custom resource can wait (1 hour at most): choose a shorter `deploymentConfig` or shorter hook timeouts');
  });

  test('hook timeouts count in the deployment length', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    expect(() => new SafeLambdaApi(stack, 'Api', {
      handler: userFunction(stack, 'H'),
      deploymentConfig: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_30MINUTES,
      postTrafficHook: userFunction(stack, 'Post', { timeout: Duration.minutes(15) }),
    })).toThrow(/may take 48 minutes \(traffic shifting .*: 30 min, hooks: 15 min\)/);
  });
});

describe('9. notifications', () => {
  test('the topic hears of failed, stopped and rolled-back deployments', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    const topic = new sns.Topic(stack, 'Topic');
    new SafeLambdaApi(stack, 'Api', { handler: userFunction(stack, 'H'), notificationTopic: topic });
    const t = Template.fromStack(stack);
    t.hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', {
      TriggerConfigurations: [{ TriggerEvents: ['DeploymentFailure', 'DeploymentStop', 'DeploymentRollback'], TriggerTargetArn: { Ref: Match.stringLikeRegexp('^Topic') }, TriggerName: Match.anyValue() }],
    });
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyName: Match.stringLikeRegexp('^ApiCodeDeployRole'),
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 'sns:Publish', Resource: { Ref: Match.stringLikeRegexp('^Topic') } })]) },
    });
  });
});

describe('10. what it exposes and the CLI metadata', () => {
  test('exposes live, stable, api, url, deploymentGroup and alarms', () => {
    const { api, stack } = setup();
    expect(api.live.aliasName).toBe('live');
    expect(api.stable.aliasName).toBe('stable');
    expect(api.restApi).toBeDefined();
    expect(api.httpApi).toBeUndefined();
    expect(api.api).toBe(api.restApi);
    expect(stack.resolve(api.url)['Fn::Join'][1][0]).toBe('https://');
    expect(api.deploymentGroup.deploymentConfig.deploymentConfigName).toBe('CodeDeployDefault.LambdaCanary10Percent5Minutes');
    expect(api.alarms).toHaveLength(4);
  });

  test('marks function, application, deployment group and API for the CLI', () => {
    const t = setup().template();
    for (const [type, role] of [
      ['AWS::Lambda::Function', 'function'],
      ['AWS::CodeDeploy::Application', 'application'],
      ['AWS::CodeDeploy::DeploymentGroup', 'deployment-group'],
      ['AWS::ApiGateway::RestApi', 'api'],
    ]) {
      t.hasResource(type, { Metadata: { 'cdk-rollback': { version: 1, kind: 'SafeLambdaApi', role, path: 'Stack/Api' } } });
    }
  });
});

describe('validation', () => {
  test.each<[string, Partial<SafeLambdaApiProps>, string]>([
    ['retainVersions < 2', { retainVersions: 1 }, '`retainVersions` must be an integer of at least 2 (the live and the stable version), got: 1'],
    ['retainVersions not an integer', { retainVersions: 2.5 }, '`retainVersions` must be an integer of at least 2 (the live and the stable version), got: 2.5'],
    ['errorRateThreshold 0', { errorRateThreshold: 0 }, '`errorRateThreshold` must be greater than 0, got: 0'],
    ['errorRateThreshold > 100', { errorRateThreshold: 150 }, '`errorRateThreshold` is a percentage and must be at most 100, got: 150'],
    ['api5xxRateThreshold negative', { api5xxRateThreshold: -1 }, '`api5xxRateThreshold` must be greater than 0, got: -1'],
    ['throttlesThreshold 0', { throttlesThreshold: 0 }, '`throttlesThreshold` must be greater than 0, got: 0'],
    ['latencyP99Threshold 0', { latencyP99Threshold: Duration.millis(0) }, '`latencyP99Threshold` must be greater than 0, got: 0 ms'],
    ['smoke path without /', { smokeTest: { path: 'health' } }, '`smokeTest.path` must start with "/", got: "health"'],
    ['smoke method', { smokeTest: { path: '/', method: 'FETCH' } }, '`smokeTest.method` must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, got: "FETCH"'],
    ['smoke status', { smokeTest: { path: '/', expectedStatus: 42 } }, '`smokeTest.expectedStatus` must be an HTTP status code (100-599), got: 42'],
    ['smoke timeout', { smokeTest: { path: '/', timeout: Duration.minutes(11) } }, '`smokeTest.timeout` must be between 1 second and 10 minutes, got: 11 minutes'],
    ['smoke timeout under a second', { smokeTest: { path: '/', timeout: Duration.millis(500) } }, '`smokeTest.timeout` must be between 1 second and 10 minutes, got: 500 millis'],
    ['alarm period', { alarmPeriod: Duration.seconds(45) }, '`alarmPeriod` must be 10, 20 or 30 seconds or a whole number of minutes, got: 45 s'],
    ['evaluation periods', { alarmEvaluationPeriods: 0 }, '`alarmEvaluationPeriods` must be an integer of at least 1, got: 0'],
    ['datapoints', { alarmDatapoints: 6 }, '`alarmDatapoints` must be an integer between 1 and `alarmEvaluationPeriods` (5), got: 6'],
  ])('%s', (_name, props, message) => {
    expect(() => setup(props)).toThrow(message);
  });

  test('an imported function is refused', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    const imported = lambda.Function.fromFunctionName(stack, 'Imported', 'existing') as lambda.Function;
    expect(() => new SafeLambdaApi(stack, 'Api', { handler: imported }))
      .toThrow('`handler` must be a lambda.Function defined in this app, got an imported function, alias or version (S/Imported): SafeLambdaApi publishes its versions and owns its aliases');
  });

  test('a function of another stack is refused', () => {
    const app = new App();
    const a = new Stack(app, 'A');
    const b = new Stack(app, 'B');
    expect(() => new SafeLambdaApi(b, 'Api', { handler: userFunction(a, 'H') }))
      .toThrow('`handler` must be in the same stack as the SafeLambdaApi (B), got a function in A');
  });

  test('one function cannot be served by two SafeLambdaApis', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    const fn = userFunction(stack, 'H');
    new SafeLambdaApi(stack, 'One', { handler: fn });
    expect(() => new SafeLambdaApi(stack, 'Two', { handler: fn }))
      .toThrow('`handler` S/H is already served by another SafeLambdaApi: one function has one `live` alias');
  });

  test('smokeTest and preTrafficHook together are refused', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    expect(() => new SafeLambdaApi(stack, 'Api', {
      handler: userFunction(stack, 'H'), smokeTest: { path: '/' }, preTrafficHook: userFunction(stack, 'Pre'),
    })).toThrow('`smokeTest` and `preTrafficHook` cannot both be set: CodeDeploy runs one BeforeAllowTraffic hook. Drop `smokeTest` and call your check from `preTrafficHook`, or drop `preTrafficHook`.');
  });

  test('more than 10 alarms on the deployment group fail synth', () => {
    const { stack, api, app } = setup();
    for (let i = 0; i < 7; i++) {
      api.addAlarm(new cloudwatch.Alarm(stack, `Extra${i}`, {
        metric: new cloudwatch.Metric({ namespace: 'Shop', metricName: `M${i}` }), threshold: 1, evaluationPeriods: 1,
      }));
    }
    expect(() => app.synth()).toThrow('a CodeDeploy deployment group takes at most 10 alarms, Stack/Api has 11 ' +
      '(4 built in, 7 from `addAlarm`): combine alarms with a cloudwatch.CompositeAlarm');
  });

  test('an authorizer of the wrong API type is refused', () => {
    const app = new App();
    const stack = new Stack(app, 'S');
    const authorizer = new apigateway.TokenAuthorizer(stack, 'Auth', { handler: userFunction(stack, 'A') });
    expect(() => new SafeLambdaApi(stack, 'Api', { handler: userFunction(stack, 'H'), apiType: ApiType.HTTP, authorizer }))
      .toThrow('`authorizer` applies to a REST API, but `apiType` is HTTP: use `httpAuthorizer` for an HTTP API');
  });
});

describe('synthesis', () => {
  test('REST and HTTP variants in an env-agnostic stack inside a Stage pass cfn-lint and cdk-nag', () => {
    const app = new App();
    const stage = new Stage(app, 'Prod');
    const stack = new Stack(stage, 'Service');
    const rest = new SafeLambdaApi(stack, 'Rest', { handler: userFunction(stack, 'RestHandler'), smokeTest: { path: '/health' } });
    const http = new SafeLambdaApi(stack, 'Http', {
      handler: userFunction(stack, 'HttpHandler'), apiType: ApiType.HTTP, postTrafficHook: userFunction(stack, 'Post'),
    });
    acknowledgePublicApi(rest);
    acknowledgePublicApi(http);
    const { templates } = synthAndValidate(app);
    expect(Object.keys(templates)).toEqual(['Prod/Service']);
  });

  test('synthesizes byte-identical templates on every run, with no absolute path', () => {
    const render = () => {
      const { stack } = setup({ smokeTest: { path: '/health' } });
      return JSON.stringify(Template.fromStack(stack).toJSON());
    };
    const first = render();
    expect(render()).toBe(first);
    expect(first).not.toContain(process.cwd());
    expect(first).not.toContain(__dirname);
  });
});

describe('lifecycle of the deployment custom resource (issue 8)', () => {
  test('the provider may read the status of its own stack only (rollback detection)', () => {
    setup().template().hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([{ Action: 'cloudformation:DescribeStacks', Effect: 'Allow', Resource: { Ref: 'AWS::StackId' } }]) },
      Roles: [{ Ref: Match.stringLikeRegexp('^CdkRollbackAliasDeploymentProviderHandlerRole') }],
    });
  });

  test('the provider may read the function\'s tags (the update record GetFunction returns only with lambda:ListTags)', () => {
    setup().template().hasResourceProperties('AWS::IAM::Policy', {
      PolicyName: Match.stringLikeRegexp('^ApiDeploymentPolicy'),
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Action: Match.arrayWith(['lambda:GetFunction', 'lambda:ListTags', 'lambda:TagResource']),
        Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Handler'), 'Arn'] },
      })]) },
    });
  });

  test('the longest deployment allowed, stopped at its deadline, still leaves 5 min for CodeDeploy\'s rollback inside the framework\'s wait and CloudFormation\'s hour', () => {
    // canary 30 min + 3 min overhead + smoke test (5 min + 30 s) = 38.5 min, + 5 min margin
    const t = setup({
      deploymentConfig: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_30MINUTES,
      smokeTest: { path: '/health', timeout: Duration.minutes(5) },
    }).template();
    const cr = Object.values(t.findResources('Custom::CdkRollbackAliasDeployment'))[0].Properties;
    expect(cr.WaitLimitSeconds).toBe('3300');
    expect(Number(cr.MaxDeploymentSeconds) + 300).toBeLessThanOrEqual(Number(cr.WaitLimitSeconds));
    expect(Number(cr.ServiceTimeout)).toBeLessThanOrEqual(3600);
    expect(Number(cr.ServiceTimeout)).toBeGreaterThan(Number(cr.WaitLimitSeconds));
    expect(cr.DeploymentConfigName).toBeUndefined();
  });

  test('an imported deployment config is read at deploy time: its name is passed and the synth deadline leaves out its shifting', () => {
    const { template, api } = setup({ deploymentConfig: codedeploy.LambdaDeploymentConfig.fromLambdaDeploymentConfigName(
      new Stack(new App(), 'Other'), 'Imported', 'Custom.Linear10Every3') });
    template().hasResourceProperties('Custom::CdkRollbackAliasDeployment', {
      DeploymentConfigName: 'Custom.Linear10Every3',
      // 3 min overhead + 5 min margin; the handler adds the config's shifting read with GetDeploymentConfig
      MaxDeploymentSeconds: String((3 + 5) * 60),
      WaitLimitSeconds: '3300',
    });
    template().hasResourceProperties('AWS::IAM::Policy', {
      PolicyName: Match.stringLikeRegexp('^ApiDeploymentPolicy'),
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Action: 'codedeploy:GetDeploymentConfig',
        Resource: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([':deploymentconfig:Custom.Linear10Every3'])] }),
      })]) },
    });
    const warnings = Annotations.fromStack(Stack.of(api)).findWarning('*', Match.stringLikeRegexp('Custom.Linear10Every3 is not known at synth'));
    expect(warnings[0].entry.data).toContain('Its length is read at deploy time (GetDeploymentConfig): a deploy whose traffic shifting, ' +
      'with the hooks, does not fit in the 45 minutes a custom resource can wait fails before any traffic moves');
  });
});
