/**
 * A small in-memory CodeDeploy for Lambda alias deployments, installed on an aws-sdk-client-mock stub
 * of CodeDeployClient. It moves the REAL alias (in moto_server) the way CodeDeploy does, which moto's
 * CodeDeploy does not: a deployment goes Created -> InProgress -> Succeeded (alias on the target) or
 * Failed / Stopped, after which an automatic rollback deployment (creator `codeDeployRollback`) puts
 * the alias back on the version it served when the deployment started. `ListDeployments` honours
 * `includeOnlyStatuses`; `StopDeployment` with `autoRollbackEnabled` stops and rolls back.
 *
 * Tests drive time explicitly: `progress(id)`, `succeed(id)`, `fail(id)`, `completeRollback(id)`.
 */
import {
  type CodeDeployClientResolvedConfig,
  CreateDeploymentCommand,
  DeploymentCreator,
  DeploymentStatus,
  GetDeploymentCommand,
  GetDeploymentConfigCommand,
  ListDeploymentsCommand,
  StopDeploymentCommand,
  type DeploymentInfo,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-codedeploy';
import { LambdaClient, UpdateAliasCommand } from '@aws-sdk/client-lambda';
import type { AwsStub } from 'aws-sdk-client-mock';

type CodeDeployStub = AwsStub<ServiceInputTypes, ServiceOutputTypes, CodeDeployClientResolvedConfig>;

interface AliasTarget { readonly functionName: string; readonly alias: string; readonly current: string; readonly target: string }

export interface FakeDeployment {
  info: DeploymentInfo;
  readonly target: AliasTarget;
}

const IN_FLIGHT: string[] = [DeploymentStatus.CREATED, DeploymentStatus.QUEUED, DeploymentStatus.IN_PROGRESS, DeploymentStatus.BAKING, DeploymentStatus.READY];

export class FakeCodeDeploy {
  public readonly deployments = new Map<string, FakeDeployment>();
  /** Traffic routing returned by GetDeploymentConfig, by config name. */
  public readonly configs = new Map<string, object>();

  constructor(private readonly stub: CodeDeployStub, private readonly lambda: LambdaClient) {}

  /** (Re)installs the fake on the stub and forgets every deployment. */
  public install(): void {
    const stub = this.stub;
    stub.reset();
    this.deployments.clear();
    stub.on(CreateDeploymentCommand).callsFake((input) => {
      const spec = JSON.parse(input.revision.appSpecContent.content) as { Resources: Array<Record<string, { Properties: Record<string, string> }>> };
      const props = Object.values(spec.Resources[0])[0].Properties;
      if (this.inFlight().length > 0) {
        throw Object.assign(new Error('another deployment is in progress'), { name: 'DeploymentLimitExceededException' });
      }
      const id = this.add({
        functionName: props.Name, alias: props.Alias, current: props.CurrentVersion, target: props.TargetVersion,
      }, input.description, DeploymentCreator.User);
      return { deploymentId: id };
    });
    stub.on(ListDeploymentsCommand).callsFake((input) => ({
      deployments: [...this.deployments.values()]
        .filter((d) => !input.includeOnlyStatuses || input.includeOnlyStatuses.includes(d.info.status))
        .map((d) => d.info.deploymentId)
        .reverse(),
    }));
    stub.on(GetDeploymentCommand).callsFake((input) => {
      const d = this.deployments.get(input.deploymentId);
      if (!d) throw Object.assign(new Error(`deployment ${input.deploymentId} does not exist`), { name: 'DeploymentDoesNotExistException' });
      return { deploymentInfo: d.info };
    });
    stub.on(StopDeploymentCommand).callsFake(async (input) => {
      const d = this.deployments.get(input.deploymentId)!;
      if (!IN_FLIGHT.includes(d.info.status!)) {
        throw Object.assign(new Error('deployment already completed'), { name: 'DeploymentAlreadyCompletedException' });
      }
      await this.end(d, DeploymentStatus.STOPPED, input.autoRollbackEnabled !== false);
      return { status: 'Pending' };
    });
    stub.on(GetDeploymentConfigCommand).callsFake((input) => {
      const routing = this.configs.get(input.deploymentConfigName);
      if (!routing) throw Object.assign(new Error('no such config'), { name: 'DeploymentConfigDoesNotExistException' });
      return { deploymentConfigInfo: { deploymentConfigName: input.deploymentConfigName, computePlatform: 'Lambda', trafficRoutingConfig: routing } };
    });
  }

  public inFlight(): FakeDeployment[] {
    return [...this.deployments.values()].filter((d) => IN_FLIGHT.includes(d.info.status!));
  }

  public get(id: string): FakeDeployment {
    const d = this.deployments.get(id);
    if (!d) throw new Error(`no fake deployment ${id}`);
    return d;
  }

  /** Ids of the deployments CodeDeploy created itself to roll back. */
  public rollbackDeployments(): string[] {
    return [...this.deployments.values()].filter((d) => d.info.creator === DeploymentCreator.CodeDeployRollback).map((d) => d.info.deploymentId!);
  }

  /** Deployments created through CreateDeployment (by the handler or the CLI). */
  public created(): FakeDeployment[] {
    return [...this.deployments.values()].filter((d) => d.info.creator === DeploymentCreator.User);
  }

  public progress(id: string): void {
    this.get(id).info = { ...this.get(id).info, status: DeploymentStatus.IN_PROGRESS };
  }

  /** Traffic fully shifted: the alias on the target. */
  public async succeed(id: string): Promise<void> {
    const d = this.get(id);
    await this.point(d.target, d.target.target);
    d.info = { ...d.info, status: DeploymentStatus.SUCCEEDED };
  }

  /** An alarm or a hook failed: Failed, and an automatic rollback deployment starts (InProgress). */
  public async fail(id: string, message = 'ErrorRateAlarm is in ALARM'): Promise<string> {
    const d = this.get(id);
    await this.end(d, DeploymentStatus.FAILED, true, { code: 'ALARM_ACTIVE', message });
    return d.info.rollbackInfo!.rollbackDeploymentId!;
  }

  /** The rollback deployment finishes: the alias back on the version it served before. */
  public async completeRollback(rollbackId: string): Promise<void> {
    const rb = this.get(rollbackId);
    await this.point(rb.target, rb.target.target);
    rb.info = { ...rb.info, status: DeploymentStatus.SUCCEEDED };
  }

  private add(target: AliasTarget, description: string | undefined, creator: DeploymentCreator): string {
    const id = `d-${String(this.deployments.size + 1).padStart(4, '0')}`;
    this.deployments.set(id, { info: { deploymentId: id, status: DeploymentStatus.CREATED, description, creator }, target });
    return id;
  }

  private async end(d: FakeDeployment, status: DeploymentStatus, rollback: boolean, errorInformation?: { code: string; message: string }): Promise<void> {
    let rollbackInfo: DeploymentInfo['rollbackInfo'];
    d.info = { ...d.info, status, errorInformation: errorInformation as DeploymentInfo['errorInformation'] };
    if (rollback) {
      // CodeDeploy's rollback deployment shifts the alias back to the version it served when d started.
      const rbId = this.add({ ...d.target, current: d.target.target, target: d.target.current }, `rollback of ${d.info.deploymentId}`, DeploymentCreator.CodeDeployRollback);
      this.progress(rbId);
      rollbackInfo = { rollbackDeploymentId: rbId, rollbackMessage: `rolled back by ${rbId}` };
    }
    d.info = { ...d.info, rollbackInfo };
  }

  private async point(t: AliasTarget, version: string): Promise<void> {
    await this.lambda.send(new UpdateAliasCommand({
      FunctionName: t.functionName, Name: t.alias, FunctionVersion: version, RoutingConfig: { AdditionalVersionWeights: {} },
    }));
  }
}
