import * as crypto from 'crypto';
import {
  Annotations,
  Aws,
  CfnResource,
  CustomResource,
  Duration,
  IResource,
  Lazy,
  RemovalPolicy,
  Stack,
  Token,
  Validations,
} from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { CLI_METADATA_KEY, LIVE_ALIAS, STABLE_ALIAS } from '../lambda/shared/contract';
import { describeDeploymentConfig } from './private/deployment-config';
import { handlerCode } from './private/handler-code';
import { markForCli } from './private/metadata';
import { acknowledgeInvokeVersions } from './private/nag';
import {
  ALIAS_DEPLOYMENT_SERVICE_TIMEOUT,
  aliasDeploymentProvider,
  PROVIDER_TOTAL_TIMEOUT,
  ROLLBACK_ROOM,
} from './private/alias-deployment-provider';

/** The kind of API Gateway API in front of the function. */
export enum ApiType {
  /** API Gateway REST API (payload format 1.0). */
  REST = 'REST',
  /** API Gateway HTTP API (payload format 2.0). */
  HTTP = 'HTTP',
}

/** The built-in pre-traffic smoke test. */
export interface SmokeTestOptions {
  /**
   * Path requested from the new version, starting with `/` (a query string may follow).
   */
  readonly path: string;
  /**
   * HTTP method of the request.
   * @default 'GET'
   */
  readonly method?: string;
  /**
   * Status code the new version must answer with.
   * @default 200
   */
  readonly expectedStatus?: number;
  /**
   * How long the smoke test waits for the new version to answer.
   * @default Duration.seconds(30)
   */
  readonly timeout?: Duration;
}

/** Properties of a SafeLambdaApi. */
export interface SafeLambdaApiProps {
  /**
   * The function to serve. It must be a `lambda.Function` defined in this stack (not an imported
   * function): SafeLambdaApi publishes its versions and owns its `live` and `stable` aliases.
   */
  readonly handler: lambda.Function;

  /**
   * REST API or HTTP API.
   * @default ApiType.REST
   */
  readonly apiType?: ApiType;

  /**
   * How CodeDeploy shifts traffic to a new version.
   * @default codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES
   */
  readonly deploymentConfig?: codedeploy.ILambdaDeploymentConfig;

  /**
   * How many published versions to keep for rollback. Versions that an alias points at and versions of
   * an in-flight deployment are always kept on top of these.
   * @default 10
   */
  readonly retainVersions?: number;

  /**
   * Error rate of the NEW version, in percent, above which the deployment rolls back.
   * @default 1
   */
  readonly errorRateThreshold?: number;

  /**
   * p99 duration of the NEW version above which the deployment rolls back.
   * @default Duration.millis(500)
   */
  readonly latencyP99Threshold?: Duration;

  /**
   * Throttled invocations of the NEW version per alarm period at or above which the deployment rolls back.
   * @default 1
   */
  readonly throttlesThreshold?: number;

  /**
   * API Gateway 5XX rate, in percent, above which the deployment rolls back.
   * @default 1
   */
  readonly api5xxRateThreshold?: number;

  /**
   * Period of the built-in alarms' datapoints. An alarm fires when `alarmDatapoints` of the last
   * `alarmEvaluationPeriods` periods breach, so a deployment must bake at least
   * `alarmDatapoints` x `alarmPeriod` before full traffic.
   * @default Duration.minutes(1)
   */
  readonly alarmPeriod?: Duration;

  /**
   * Number of periods the built-in alarms look at ("over 5 minutes" with the default period).
   * @default 5
   */
  readonly alarmEvaluationPeriods?: number;

  /**
   * Number of breaching periods, among `alarmEvaluationPeriods`, that fire an alarm.
   * @default 3
   */
  readonly alarmDatapoints?: number;

  /**
   * A built-in BeforeAllowTraffic hook that invokes the new version with an API-Gateway-shaped
   * request and fails the deployment unless it answers with `expectedStatus`.
   * @default - no smoke test
   */
  readonly smokeTest?: SmokeTestOptions;

  /**
   * Your own BeforeAllowTraffic hook. It receives CodeDeploy's hook event and must report with
   * `PutLifecycleEventHookExecutionStatus` (permission granted automatically).
   * @default - none (or the smoke test)
   */
  readonly preTrafficHook?: lambda.IFunction;

  /**
   * Your own AfterAllowTraffic hook, as `preTrafficHook`.
   * @default - none
   */
  readonly postTrafficHook?: lambda.IFunction;

  /**
   * Authorizer of every method of the REST API (`apiType` REST).
   * @default - no authorization: acknowledge cdk-nag's AwsSolutions-APIG4 and -COG4 on `restApi` if the API is public by design
   */
  readonly authorizer?: apigateway.IAuthorizer;

  /**
   * Authorizer of the default route of the HTTP API (`apiType` HTTP).
   * @default - no authorization: acknowledge cdk-nag's AwsSolutions-APIG4 on `httpApi` if the API is public by design
   */
  readonly httpAuthorizer?: apigwv2.IHttpRouteAuthorizer;

  /**
   * SNS topic told about failed, stopped and rolled-back deployments.
   * @default - no notifications
   */
  readonly notificationTopic?: sns.ITopic;

  /**
   * Retention of the logs of the API's access log and of the construct's own functions.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

const DEFAULT_RETAIN_VERSIONS = 10;
/** Margin added to the estimated deployment length before the deployment is stopped. */
const DEPLOYMENT_MARGIN = Duration.minutes(5);
/**
 * Time a deployment may take (45 min): its deadline (plus the margin), then the wait for CodeDeploy's
 * rollback deployment after a stop at the deadline, fit in the Provider framework's wait, which fits in
 * CloudFormation's hour (ServiceTimeout).
 */
const MAX_DEPLOYMENT = Duration.seconds(PROVIDER_TOTAL_TIMEOUT.toSeconds() - ROLLBACK_ROOM.toSeconds() - DEPLOYMENT_MARGIN.toSeconds());
/** CodeDeploy start-up, alarm settling and hook scheduling, on top of hooks and traffic shifting. */
const DEPLOYMENT_OVERHEAD = Duration.minutes(3);
/** What a user hook may take when its timeout is unknown (Lambda's maximum). */
const UNKNOWN_HOOK_TIMEOUT = Duration.minutes(15);
const MAX_GROUP_ALARMS = 10;
const SMOKE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** Props resolved to their defaults, shared by the construction steps of SafeLambdaApi. */
interface ResolvedSettings {
  readonly retainVersions: number;
  readonly deploymentConfig: codedeploy.ILambdaDeploymentConfig;
  readonly alarmPeriod: Duration;
  readonly evaluationPeriods: number;
  readonly datapoints: number;
  /** Traffic-shifting time of the deployment config; undefined when unknown at synth (imported config). */
  readonly shift: Duration | undefined;
  readonly apiType: ApiType;
  readonly logRetention: logs.RetentionDays;
}

interface CodeDeployParts {
  readonly application: codedeploy.LambdaApplication;
  readonly role: iam.Role;
  readonly cfnGroup: codedeploy.CfnDeploymentGroup;
  readonly group: codedeploy.ILambdaDeploymentGroup;
}

interface ApiParts {
  readonly api: IResource;
  readonly restApi?: apigateway.RestApi;
  readonly httpApi?: apigwv2.HttpApi;
  readonly url: string;
  readonly apiId: string;
  readonly permission: lambda.CfnPermission;
}

interface HookParts {
  readonly preHook?: lambda.IFunction;
  readonly preHookTimeout: Duration;
  readonly smokeTest?: lambda.IFunction;
}

/**
 * A Lambda function behind API Gateway whose releases are reversible: every deploy publishes a
 * version, CodeDeploy shifts the `live` alias to it (canary by default) while alarms scoped to the
 * new version and health hooks watch, a failure rolls traffic and the stack back, and `stable`
 * points at the last version that passed.
 */
export class SafeLambdaApi extends Construct {
  /** The alias API Gateway invokes. Moved only by CodeDeploy (or `cdk-rollback api rollback`). */
  public readonly live: lambda.IAlias;
  /** The alias on the last version that passed a deployment: the rollback target. */
  public readonly stable: lambda.IAlias;
  /** The version this deploy publishes. */
  public readonly currentVersion: lambda.IVersion;
  /** The API (REST or HTTP). See also `restApi` / `httpApi`. */
  public readonly api: IResource;
  /** The REST API, when `apiType` is REST. */
  public readonly restApi?: apigateway.RestApi;
  /** The HTTP API, when `apiType` is HTTP. */
  public readonly httpApi?: apigwv2.HttpApi;
  /** Base URL of the API. */
  public readonly url: string;
  /** The CodeDeploy deployment group that shifts traffic. */
  public readonly deploymentGroup: codedeploy.ILambdaDeploymentGroup;
  /** The function running the built-in smoke test, if any. */
  public readonly smokeTestFunction?: lambda.IFunction;

  private readonly _alarms: cloudwatch.IAlarm[] = [];
  private builtInAlarmCount = 0;
  private readonly codeDeployRole: iam.Role;

  constructor(scope: Construct, id: string, props: SafeLambdaApiProps) {
    super(scope, id);
    const settings = this.resolveSettings(props);
    const fn = props.handler;

    // 1. A version per change of code OR configuration; `live` and `stable` are owned by the deployment resource.
    const version = this.publishVersion(fn);
    this.currentVersion = lambda.Version.fromVersionAttributes(this, 'CurrentVersion', { lambda: fn, version: version.attrVersion });
    this.live = lambda.Alias.fromAliasAttributes(this, 'Live', { aliasName: LIVE_ALIAS, aliasVersion: this.currentVersion });
    this.stable = lambda.Alias.fromAliasAttributes(this, 'Stable', { aliasName: STABLE_ALIAS, aliasVersion: this.currentVersion });

    // 2. CodeDeploy: application, service role, deployment group (alarms rendered lazily).
    const codeDeploy = this.createDeploymentGroup(fn, settings, props.notificationTopic);
    this.codeDeployRole = codeDeploy.role;
    this.deploymentGroup = codeDeploy.group;

    // 3. API Gateway bound to `live`, one invoke permission on the alias.
    const api = this.createApi(fn, settings, props);
    this.api = api.api;
    this.restApi = api.restApi;
    this.httpApi = api.httpApi;
    this.url = api.url;

    // 4. Alarms scoped to the version under deployment.
    this.createAlarms(fn, version, settings, api.apiId, props);

    // 5. Health hooks (the built-in smoke test or the user's).
    const hooks = this.createHooks(fn, settings, props);
    this.smokeTestFunction = hooks.smokeTest;

    // 6. The deployment custom resource: shifts from live's ACTUAL version, waits, moves stable.
    this.createDeployment(fn, version, codeDeploy, hooks, settings, api.permission, props);

    // 7. Metadata for the CLI, and the alarm limit (alarms can be added after construction).
    markForCli(fn, this, 'SafeLambdaApi', 'function');
    markForCli(codeDeploy.application, this, 'SafeLambdaApi', 'application');
    markForCli(codeDeploy.cfnGroup, this, 'SafeLambdaApi', 'deployment-group');
    markForCli(this.api, this, 'SafeLambdaApi', 'api');
    this.node.addValidation({ validate: () => this.validateAlarmCount() });
  }

  /** The alarms that roll a deployment back: the built-in ones and those added with `addAlarm`. */
  public get alarms(): cloudwatch.IAlarm[] {
    return [...this._alarms];
  }

  /** Adds an alarm that rolls a deployment back when it fires. */
  public addAlarm(alarm: cloudwatch.IAlarm): void {
    this._alarms.push(alarm);
  }

  /** Validates the props (tokens are skipped) and resolves the defaults every step uses. */
  private resolveSettings(props: SafeLambdaApiProps): ResolvedSettings {
    this.validateHandler(props.handler);
    const retainVersions = props.retainVersions ?? DEFAULT_RETAIN_VERSIONS;
    this.validateRetainVersions(retainVersions);
    this.validateThresholds(props);
    if (props.smokeTest) this.validateSmokeTest(props.smokeTest);
    if (props.smokeTest && props.preTrafficHook) {
      throw new Error('`smokeTest` and `preTrafficHook` cannot both be set: CodeDeploy runs one BeforeAllowTraffic hook. ' +
        'Drop `smokeTest` and call your check from `preTrafficHook`, or drop `preTrafficHook`.');
    }
    if (props.authorizer && props.apiType === ApiType.HTTP) {
      throw new Error('`authorizer` applies to a REST API, but `apiType` is HTTP: use `httpAuthorizer` for an HTTP API');
    }
    if (props.httpAuthorizer && (props.apiType ?? ApiType.REST) === ApiType.REST) {
      throw new Error('`httpAuthorizer` applies to an HTTP API, but `apiType` is REST: use `authorizer` for a REST API');
    }
    const deploymentConfig = props.deploymentConfig ?? codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES;
    const alarmPeriod = props.alarmPeriod ?? Duration.minutes(1);
    const evaluationPeriods = props.alarmEvaluationPeriods ?? 5;
    const datapoints = props.alarmDatapoints ?? 3;
    this.validateAlarmWindow(alarmPeriod, evaluationPeriods, datapoints);
    const shift = this.validateBakeTime(deploymentConfig, alarmPeriod, datapoints);

    return {
      retainVersions,
      deploymentConfig,
      alarmPeriod,
      evaluationPeriods,
      datapoints,
      shift,
      apiType: props.apiType ?? ApiType.REST,
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    };
  }

  /** The version of this deploy: one per change of the function's code OR configuration, kept for rollback. */
  private publishVersion(fn: lambda.Function): lambda.CfnVersion {
    const version = new lambda.CfnVersion(this, 'Version', {
      functionName: fn.functionName,
      description: Lazy.string({ produce: () => `cdk-rollback ${functionFingerprint(fn)}` }),
    });
    // Old versions stay for rollback; the deployment custom resource prunes beyond `retainVersions`.
    version.applyRemovalPolicy(RemovalPolicy.RETAIN);
    return version;
  }

  /** CodeDeploy application, its service role and the deployment group (alarms rendered lazily). */
  private createDeploymentGroup(fn: lambda.Function, s: ResolvedSettings, notificationTopic?: sns.ITopic): CodeDeployParts {
    const liveArn = `${fn.functionArn}:${LIVE_ALIAS}`;
    const deploymentConfig = s.deploymentConfig;
    const application = new codedeploy.LambdaApplication(this, 'Application');
    const role = new iam.Role(this, 'CodeDeployRole', {
      assumedBy: new iam.ServicePrincipal('codedeploy.amazonaws.com'),
      description: `CodeDeploy shifts ${fn.node.path} between versions`,
    });
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['lambda:GetAlias', 'lambda:UpdateAlias', 'lambda:GetProvisionedConcurrencyConfig'],
      resources: [liveArn],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['cloudwatch:DescribeAlarms'],
      resources: ['*'],
    }));
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'cloudwatch:DescribeAlarms supports no resource-level permissions; CodeDeploy reads the deployment group alarms with it',
    });

    const cfnGroup = new codedeploy.CfnDeploymentGroup(this, 'DeploymentGroup', {
      applicationName: application.applicationName,
      serviceRoleArn: role.roleArn,
      deploymentConfigName: deploymentConfig.deploymentConfigName,
      deploymentStyle: { deploymentType: 'BLUE_GREEN', deploymentOption: 'WITH_TRAFFIC_CONTROL' },
      autoRollbackConfiguration: {
        enabled: true,
        events: ['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_ALARM', 'DEPLOYMENT_STOP_ON_REQUEST'],
      },
      alarmConfiguration: {
        enabled: true,
        alarms: Lazy.any({ produce: () => this._alarms.map((a) => ({ name: a.alarmName })) }),
      },
      triggerConfigurations: notificationTopic ? [{
        triggerName: 'cdk-rollback-deployment-events',
        triggerTargetArn: notificationTopic.topicArn,
        triggerEvents: ['DeploymentFailure', 'DeploymentStop', 'DeploymentRollback'],
      }] : undefined,
    });
    if (notificationTopic) notificationTopic.grantPublish(role);
    const group = codedeploy.LambdaDeploymentGroup.fromLambdaDeploymentGroupAttributes(this, 'Group', {
      application,
      deploymentGroupName: cfnGroup.ref,
      deploymentConfig,
    });

    return { application, role, cfnGroup, group };
  }

  /** A REST (default) or HTTP API integrated with `live`, and the one invoke permission on the alias. */
  private createApi(fn: lambda.Function, s: ResolvedSettings, props: SafeLambdaApiProps): ApiParts {
    const liveArn = `${fn.functionArn}:${LIVE_ALIAS}`;
    const apiType = s.apiType;
    const logRetention = s.logRetention;
    let result: Omit<ApiParts, 'permission' | 'apiId'>;
    const accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: logRetention });
    const integrationUri = `arn:${Aws.PARTITION}:apigateway:${Aws.REGION}:lambda:path/2015-03-31/functions/${liveArn}/invocations`;
    let apiId: string;
    if (apiType === ApiType.HTTP) {
      const httpApi = new apigwv2.HttpApi(this, 'HttpApi', {
        defaultIntegration: new LiveAliasHttpIntegration(liveArn),
        defaultAuthorizer: props.httpAuthorizer,
        createDefaultStage: false,
      });
      new apigwv2.HttpStage(this, 'HttpStage', {
        httpApi,
        stageName: '$default',
        autoDeploy: true,
        accessLogSettings: {
          destination: new apigwv2.LogGroupLogDestination(accessLogs),
          format: apigateway.AccessLogFormat.jsonWithStandardFields(),
        },
      });
      result = { api: httpApi, httpApi, url: `${httpApi.apiEndpoint}/` };
      apiId = httpApi.apiId;
    } else {
      const integration = new apigateway.Integration({
        type: apigateway.IntegrationType.AWS_PROXY,
        integrationHttpMethod: 'POST',
        uri: integrationUri,
      });
      const restApi = new apigateway.RestApi(this, 'RestApi', {
        description: `${fn.node.path} through alias ${LIVE_ALIAS}`,
        cloudWatchRole: false,
        deployOptions: {
          accessLogDestination: new apigateway.LogGroupLogDestination(accessLogs),
          accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields(),
        },
        defaultIntegration: integration,
        defaultMethodOptions: props.authorizer ? { authorizer: props.authorizer } : undefined,
      });
      restApi.root.addMethod('ANY');
      restApi.root.addProxy({ anyMethod: true });
      result = { api: restApi, restApi, url: restApi.url };
      apiId = restApi.restApiId;
    }
    if (result.restApi) {
      Validations.of(result.restApi).acknowledge({
        id: 'AwsSolutions-APIG2',
        reason: 'A catch-all proxy to one function: the function validates its requests',
      });
      Validations.of(result.restApi.deploymentStage).acknowledge({
        id: 'AwsSolutions-APIG6',
        reason: 'Execution logging needs the account-wide API Gateway CloudWatch role, which a library must not create; access logs are on',
      });
    }
    const permission = new lambda.CfnPermission(this, 'InvokePermission', {
      action: 'lambda:InvokeFunction',
      functionName: liveArn,
      principal: 'apigateway.amazonaws.com',
      sourceArn: `arn:${Aws.PARTITION}:execute-api:${Aws.REGION}:${Aws.ACCOUNT_ID}:${apiId}/*`,
    });
    return { ...result, apiId, permission };
  }

  /** Error rate, p99 duration and throttles of the version under deployment, and the API's 5XX rate. */
  private createAlarms(fn: lambda.Function, version: lambda.CfnVersion, s: ResolvedSettings, apiId: string, props: SafeLambdaApiProps): void {
    const { alarmPeriod, evaluationPeriods, datapoints, apiType } = s;
    const versionMetric = (metricName: string, statistic: string) => new cloudwatch.Metric({
      namespace: 'AWS/Lambda',
      metricName,
      statistic,
      period: alarmPeriod,
      dimensionsMap: {
        FunctionName: fn.functionName,
        Resource: `${fn.functionName}:${LIVE_ALIAS}`,
        ExecutedVersion: version.attrVersion,
      },
    });
    const alarmBase = {
      evaluationPeriods,
      datapointsToAlarm: datapoints,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    };
    this.addAlarm(new cloudwatch.Alarm(this, 'ErrorRateAlarm', {
      ...alarmBase,
      alarmDescription: `Error rate of the new version of ${fn.node.path} behind ${LIVE_ALIAS} (percent)`,
      metric: new cloudwatch.MathExpression({
        expression: '100 * errors / MAX([invocations, 1])',
        usingMetrics: { errors: versionMetric('Errors', 'Sum'), invocations: versionMetric('Invocations', 'Sum') },
        period: alarmPeriod,
        label: 'error rate (%)',
      }),
      threshold: props.errorRateThreshold ?? 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    }));
    this.addAlarm(new cloudwatch.Alarm(this, 'LatencyAlarm', {
      ...alarmBase,
      alarmDescription: `p99 duration of the new version of ${fn.node.path} (ms)`,
      metric: versionMetric('Duration', 'p99'),
      threshold: (props.latencyP99Threshold ?? Duration.millis(500)).toMilliseconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    }));
    this.addAlarm(new cloudwatch.Alarm(this, 'ThrottlesAlarm', {
      ...alarmBase,
      alarmDescription: `Throttled invocations of the new version of ${fn.node.path}`,
      metric: versionMetric('Throttles', 'Sum'),
      threshold: props.throttlesThreshold ?? 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    }));
    const apiMetric = (metricName: string) => apiType === ApiType.HTTP
      ? new cloudwatch.Metric({ namespace: 'AWS/ApiGateway', metricName, statistic: 'Sum', period: alarmPeriod, dimensionsMap: { ApiId: apiId } })
      : new cloudwatch.Metric({ namespace: 'AWS/ApiGateway', metricName, statistic: 'Sum', period: alarmPeriod, dimensionsMap: { ApiName: this.restApi!.restApiName } });
    this.addAlarm(new cloudwatch.Alarm(this, 'Api5xxAlarm', {
      ...alarmBase,
      alarmDescription: `API Gateway 5XX rate of ${this.node.path} (percent)`,
      metric: new cloudwatch.MathExpression({
        expression: '100 * errors / MAX([requests, 1])',
        usingMetrics: {
          errors: apiMetric(apiType === ApiType.HTTP ? '5xx' : '5XXError'),
          requests: apiMetric('Count'),
        },
        period: alarmPeriod,
        label: '5XX rate (%)',
      }),
      threshold: props.api5xxRateThreshold ?? 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    }));

    this.builtInAlarmCount = this._alarms.length;

  }

  /** The BeforeAllowTraffic hook (the built-in smoke test or `preTrafficHook`), `postTrafficHook`, their permissions. */
  private createHooks(fn: lambda.Function, s: ResolvedSettings, props: SafeLambdaApiProps): HookParts {
    const { apiType, logRetention } = s;
    let smokeTest: lambda.IFunction | undefined;
    let preHook = props.preTrafficHook;
    let preHookTimeout = hookTimeout(props.preTrafficHook);
    if (props.smokeTest) {
      const timeout = props.smokeTest.timeout ?? Duration.seconds(30);
      const smokeLogs = new logs.LogGroup(this, 'SmokeTestLogs', { retention: logRetention });
      const smokeRole = new iam.Role(this, 'SmokeTestRole', {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `Pre-traffic smoke test of ${fn.node.path}`,
      });
      smokeLogs.grantWrite(smokeRole);
      const smoke = new lambda.Function(this, 'SmokeTest', {
        runtime: lambda.Runtime.NODEJS_24_X,
        role: smokeRole,
        handler: 'index.handler',
        code: handlerCode('smoke-test'),
        timeout: Duration.seconds(timeout.toSeconds() + 30),
        memorySize: 256,
        description: `Pre-traffic smoke test of ${fn.node.path}`,
        logGroup: smokeLogs,
        environment: {
          FUNCTION_NAME: fn.functionName,
          SMOKE_PATH: props.smokeTest.path,
          SMOKE_METHOD: (props.smokeTest.method ?? 'GET').toUpperCase(),
          SMOKE_EXPECTED_STATUS: String(props.smokeTest.expectedStatus ?? 200),
          PAYLOAD_FORMAT: apiType === ApiType.HTTP ? '2.0' : '1.0',
          SMOKE_TIMEOUT_MS: String(timeout.toMilliseconds()),
        },
      });
      smoke.addToRolePolicy(new iam.PolicyStatement({
        actions: ['codedeploy:ListDeploymentTargets', 'codedeploy:GetDeploymentTarget'],
        resources: [this.deploymentGroup.deploymentGroupArn],
      }));
      smokeTest = smoke;
      preHook = smoke;
      preHookTimeout = smoke.timeout!;
    }
    const hooks = [preHook, props.postTrafficHook].filter((h): h is lambda.IFunction => h !== undefined);
    for (const hook of hooks) {
      this.codeDeployRole.addToPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [hook.functionArn] }));
      hook.addToRolePolicy(new iam.PolicyStatement({
        actions: ['codedeploy:PutLifecycleEventHookExecutionStatus'],
        resources: [this.deploymentGroup.deploymentGroupArn],
      }));
      hook.addToRolePolicy(new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [`${fn.functionArn}:*`],
      }));
      if (hook.role) {
        acknowledgeInvokeVersions(hook.role, fn,
          'A deployment hook invokes the version under deployment, whose number is only known at deploy time');
      }
    }

    return { preHook, preHookTimeout, smokeTest };
  }

  /** The custom resource that owns `live` and `stable`; its deadline is checked against the 1-hour custom resource limit. */
  private createDeployment(
    fn: lambda.Function, version: lambda.CfnVersion, codeDeploy: CodeDeployParts, hooks: HookParts, s: ResolvedSettings,
    permission: lambda.CfnPermission, props: SafeLambdaApiProps,
  ): void {
    const { application, cfnGroup } = codeDeploy;
    const { preHook, preHookTimeout } = hooks;
    const { deploymentConfig, shift, retainVersions } = s;
    const estimate = Duration.seconds(
      DEPLOYMENT_OVERHEAD.toSeconds() + (shift?.toSeconds() ?? 0) +
      (preHook ? preHookTimeout.toSeconds() : 0) + (props.postTrafficHook ? hookTimeout(props.postTrafficHook).toSeconds() : 0));
    if (estimate.toSeconds() > MAX_DEPLOYMENT.toSeconds()) {
      throw new Error(
        `a deployment of ${this.node.path} may take ${Math.ceil(estimate.toSeconds() / 60)} minutes ` +
        `(traffic shifting by \`deploymentConfig\` ${deploymentConfig.deploymentConfigName}: ${Math.ceil((shift?.toSeconds() ?? 0) / 60)} min, ` +
        `hooks: ${Math.ceil((estimate.toSeconds() - DEPLOYMENT_OVERHEAD.toSeconds() - (shift?.toSeconds() ?? 0)) / 60)} min), ` +
        `more than the ${MAX_DEPLOYMENT.toMinutes()} minutes a CloudFormation custom resource can wait (1 hour at most): ` +
        'choose a shorter `deploymentConfig` or shorter hook timeouts',
      );
    }
    const maxDeployment = estimate.plus(DEPLOYMENT_MARGIN);
    const provider = aliasDeploymentProvider(this);
    const cr = new CustomResource(this, 'Deployment', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::CdkRollbackAliasDeployment',
      serviceTimeout: ALIAS_DEPLOYMENT_SERVICE_TIMEOUT,
      properties: {
        FunctionName: fn.functionName,
        TargetVersion: version.attrVersion,
        ApplicationName: application.applicationName,
        DeploymentGroupName: cfnGroup.ref,
        BeforeAllowTrafficHook: preHook?.functionName ?? '',
        AfterAllowTrafficHook: props.postTrafficHook?.functionName ?? '',
        RetainVersions: String(retainVersions),
        MaxDeploymentSeconds: String(maxDeployment.toSeconds()),
        ConstructPath: this.node.path,
        // A config unknown at synth is read at run time (GetDeploymentConfig); its shifting time is added then.
        DeploymentConfigName: shift === undefined ? deploymentConfig.deploymentConfigName : undefined,
        WaitLimitSeconds: String(PROVIDER_TOTAL_TIMEOUT.toSeconds()),
      },
    });
    // Alarms, hooks and their permissions must exist before traffic moves.
    // (the group, alarms and hooks are referenced, so CloudFormation orders them already)
    cr.node.addDependency(this.codeDeployRole);
    permission.node.addDependency(cr); // the alias exists once the custom resource ran
    this.grantDeploymentToProvider(provider.role, fn, application, deploymentConfig);

  }

  /** CodeDeploy accepts at most 10 alarms per deployment group. */
  private validateAlarmCount(): string[] {
    return this._alarms.length > MAX_GROUP_ALARMS
      ? [`a CodeDeploy deployment group takes at most ${MAX_GROUP_ALARMS} alarms, ${this.node.path} has ${this._alarms.length} ` +
        `(${this.builtInAlarmCount} built in, ${this._alarms.length - this.builtInAlarmCount} from \`addAlarm\`): ` +
        'combine alarms with a cloudwatch.CompositeAlarm']
      : [];
  }

  private grantDeploymentToProvider(
    role: iam.IRole,
    fn: lambda.Function,
    application: codedeploy.ILambdaApplication,
    config: codedeploy.ILambdaDeploymentConfig,
  ): void {
    const groupArn = this.deploymentGroup.deploymentGroupArn;
    const policy = new iam.Policy(this, 'DeploymentPolicy', {
      statements: [
        new iam.PolicyStatement({
          // ListTags: GetFunction returns the function's tags (the update record) only with it.
          actions: ['lambda:GetFunction', 'lambda:ListTags', 'lambda:TagResource', 'lambda:ListVersionsByFunction', 'lambda:ListAliases'],
          resources: [fn.functionArn],
        }),
        new iam.PolicyStatement({
          actions: ['lambda:GetAlias', 'lambda:CreateAlias', 'lambda:UpdateAlias', 'lambda:DeleteFunction'],
          resources: [`${fn.functionArn}:*`],
        }),
        new iam.PolicyStatement({
          actions: [
            'codedeploy:CreateDeployment', 'codedeploy:GetDeployment', 'codedeploy:StopDeployment',
            'codedeploy:ListDeployments',
          ],
          resources: [groupArn],
        }),
        new iam.PolicyStatement({
          actions: ['codedeploy:GetApplicationRevision', 'codedeploy:RegisterApplicationRevision'],
          resources: [application.applicationArn],
        }),
        new iam.PolicyStatement({
          actions: ['codedeploy:GetDeploymentConfig'],
          resources: [config.deploymentConfigArn],
        }),
      ],
    });
    policy.attachToRole(role);
    acknowledgeInvokeVersions(policy, fn, 'The deployment custom resource manages the aliases and published versions of this one function');
  }

  private validateHandler(handler: lambda.Function): void {
    const cfn = (handler as Construct)?.node?.defaultChild;
    if (!CfnResource.isCfnResource(cfn) || cfn.cfnResourceType !== 'AWS::Lambda::Function') {
      throw new Error('`handler` must be a lambda.Function defined in this app, got an imported function, alias or version ' +
        `(${(handler as Construct)?.node?.path ?? String(handler)}): SafeLambdaApi publishes its versions and owns its aliases`);
    }
    if (Stack.of(handler) !== Stack.of(this)) {
      throw new Error(`\`handler\` must be in the same stack as the SafeLambdaApi (${Stack.of(this).node.path}), ` +
        `got a function in ${Stack.of(handler).node.path}`);
    }
    if (cfn.getMetadata(CLI_METADATA_KEY)) {
      throw new Error(`\`handler\` ${handler.node.path} is already served by another SafeLambdaApi: one function has one \`live\` alias`);
    }
  }

  private validateRetainVersions(n: number): void {
    if (Token.isUnresolved(n)) return;
    if (!Number.isInteger(n) || n < 2) {
      throw new Error(`\`retainVersions\` must be an integer of at least 2 (the live and the stable version), got: ${n}`);
    }
  }

  private validateThresholds(props: SafeLambdaApiProps): void {
    const positive: Array<[string, number | undefined]> = [
      ['errorRateThreshold', props.errorRateThreshold],
      ['throttlesThreshold', props.throttlesThreshold],
      ['api5xxRateThreshold', props.api5xxRateThreshold],
      ['latencyP99Threshold', props.latencyP99Threshold?.toMilliseconds()],
    ];
    for (const [name, value] of positive) {
      if (value === undefined || Token.isUnresolved(value)) continue;
      if (!(value > 0)) {
        throw new Error(`\`${name}\` must be greater than 0, got: ${name === 'latencyP99Threshold' ? `${value} ms` : value}`);
      }
    }
    for (const name of ['errorRateThreshold', 'api5xxRateThreshold'] as const) {
      const value = props[name];
      if (value !== undefined && !Token.isUnresolved(value) && value > 100) {
        throw new Error(`\`${name}\` is a percentage and must be at most 100, got: ${value}`);
      }
    }
  }

  private validateSmokeTest(smoke: SmokeTestOptions): void {
    if (!Token.isUnresolved(smoke.path) && !smoke.path.startsWith('/')) {
      throw new Error(`\`smokeTest.path\` must start with "/", got: "${smoke.path}"`);
    }
    const method = (smoke.method ?? 'GET').toUpperCase();
    if (!SMOKE_METHODS.includes(method)) {
      throw new Error(`\`smokeTest.method\` must be one of ${SMOKE_METHODS.join(', ')}, got: "${smoke.method}"`);
    }
    const status = smoke.expectedStatus ?? 200;
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new Error(`\`smokeTest.expectedStatus\` must be an HTTP status code (100-599), got: ${status}`);
    }
    const timeout = smoke.timeout?.toMilliseconds();
    if (timeout !== undefined && (timeout < 1000 || timeout > 600_000)) {
      throw new Error(`\`smokeTest.timeout\` must be between 1 second and 10 minutes, got: ${smoke.timeout!.toHumanString()}`);
    }
  }

  private validateAlarmWindow(period: Duration, evaluationPeriods: number, datapoints: number): void {
    const seconds = period.toSeconds();
    if (![10, 20, 30].includes(seconds) && (seconds < 60 || seconds % 60 !== 0)) {
      throw new Error(`\`alarmPeriod\` must be 10, 20 or 30 seconds or a whole number of minutes, got: ${seconds} s`);
    }
    if (!Number.isInteger(evaluationPeriods) || evaluationPeriods < 1) {
      throw new Error(`\`alarmEvaluationPeriods\` must be an integer of at least 1, got: ${evaluationPeriods}`);
    }
    if (!Number.isInteger(datapoints) || datapoints < 1 || datapoints > evaluationPeriods) {
      throw new Error(`\`alarmDatapoints\` must be an integer between 1 and \`alarmEvaluationPeriods\` (${evaluationPeriods}), got: ${datapoints}`);
    }
  }

  /**
   * An alarm needs `datapoints` periods of data before it can fire; a deployment that puts all traffic
   * on the new version sooner cannot be rolled back by it in time. Returns how long traffic shifting takes.
   */
  private validateBakeTime(config: codedeploy.ILambdaDeploymentConfig, period: Duration, datapoints: number): Duration | undefined {
    const info = describeDeploymentConfig(config);
    if (!info) {
      Annotations.of(this).addWarningV2('cdk-rollback:unknownDeploymentConfig',
        `\`deploymentConfig\` ${config.deploymentConfigName} is not known at synth: its bake time cannot be checked against the alarms. ` +
        'Its length is read at deploy time (GetDeploymentConfig): a deploy whose traffic shifting, with the hooks, does not fit in the ' +
        `${MAX_DEPLOYMENT.toMinutes()} minutes a custom resource can wait fails before any traffic moves`);
      return undefined;
    }
    const needed = period.toSeconds() * datapoints;
    if (info.bake.toSeconds() < needed) {
      throw new Error(
        `\`deploymentConfig\` ${info.name} bakes the new version for ${formatDuration(info.bake)} before it takes all traffic, ` +
        `shorter than the ${datapoints} alarm periods of ${formatDuration(period)} (${formatDuration(Duration.seconds(needed))}) ` +
        'the alarms need to fire: the alarms could not roll it back. ' +
        'Choose a canary or linear config that bakes longer, or lower `alarmPeriod` / `alarmDatapoints`',
      );
    }
    return info.total;
  }
}


function hookTimeout(hook: lambda.IFunction | undefined): Duration {
  if (hook instanceof lambda.Function && hook.timeout) return hook.timeout;
  return UNKNOWN_HOOK_TIMEOUT;
}

function formatDuration(d: Duration): string {
  const s = d.toSeconds();
  return s > 0 && s % 60 === 0 ? `${s / 60} min` : `${s} s`;
}

/**
 * A fingerprint of everything that makes up a version: the function's code and its whole
 * configuration (environment, memory, layers, runtime, timeout...). A change of any of them publishes
 * a new version, independently of the `@aws-cdk/aws-lambda:recognizeVersionProps` feature flags.
 */
function functionFingerprint(fn: lambda.Function): string {
  const cfn = fn.node.defaultChild as CfnResource;
  const stack = Stack.of(fn);
  const rendered = stack.resolve((cfn as unknown as { _toCloudFormation(): object })._toCloudFormation()) as {
    Resources: Record<string, { Properties?: unknown }>;
  };
  const resource = Object.values(rendered.Resources)[0];
  return crypto.createHash('sha256').update(JSON.stringify(resource.Properties ?? {})).digest('hex').slice(0, 32);
}

/** An HTTP API integration with the `live` alias that adds no per-route permission. */
class LiveAliasHttpIntegration extends apigwv2.HttpRouteIntegration {
  constructor(private readonly aliasArn: string) {
    super('LiveAlias');
  }

  public bind(): apigwv2.HttpRouteIntegrationConfig {
    return {
      type: apigwv2.HttpIntegrationType.AWS_PROXY,
      uri: this.aliasArn,
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    };
  }
}
