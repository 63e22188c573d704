import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { CreateRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import {
  CreateFunctionCommand,
  LambdaClient,
  PublishVersionCommand,
  UpdateFunctionConfigurationCommand,
} from '@aws-sdk/client-lambda';
import { ZipFile } from 'yazl';
import type { AliasDeploymentProperties } from '../../lambda/alias-deployment/index';

/** A zip holding index.js. */
export function zipOf(source: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const zip = new ZipFile();
    zip.addBuffer(Buffer.from(source), 'index.js', { mtime: new Date(0) });
    zip.end();
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
  });
}

/** An IAM role Lambda can assume (moto checks that it exists). */
export async function lambdaRole(roleName = 'lambda-role'): Promise<string> {
  const out = await new IAMClient({}).send(new CreateRoleCommand({
    RoleName: roleName,
    AssumeRolePolicyDocument: JSON.stringify({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    }),
  }));
  return out.Role!.Arn!;
}

/** Creates function `name` and publishes versions 1..n; returns the function ARN. */
export async function createFunctionWithVersions(client: LambdaClient, name: string, n: number): Promise<string> {
  const fn = await client.send(new CreateFunctionCommand({
    FunctionName: name,
    Runtime: 'nodejs22.x',
    Role: await lambdaRole(`${name}-role`),
    Handler: 'index.handler',
    Code: { ZipFile: await zipOf('exports.handler = async () => ({ statusCode: 200 });') },
  }));
  for (let i = 1; i <= n; i++) {
    // Lambda (and moto) publish a new version only when something changed.
    await client.send(new UpdateFunctionConfigurationCommand({ FunctionName: name, Environment: { Variables: { RELEASE: String(i) } } }));
    await client.send(new PublishVersionCommand({ FunctionName: name, Description: `v${i}` }));
  }
  return fn.FunctionArn!;
}

/** A CloudFormation event for the alias-deployment custom resource. */
export function event(
  type: 'Create' | 'Update' | 'Delete',
  props: Partial<AliasDeploymentProperties>,
  requestId = `request-${type}`,
): CloudFormationCustomResourceEvent {
  const resourceProperties: AliasDeploymentProperties & { ServiceToken: string } = {
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:provider',
    FunctionName: 'fn',
    TargetVersion: '1',
    ApplicationName: 'app',
    DeploymentGroupName: 'group',
    RetainVersions: '10',
    MaxDeploymentSeconds: '1200',
    ConstructPath: 'Stack/Api',
    ...props,
  };
  const base = {
    ServiceToken: resourceProperties.ServiceToken,
    ResponseURL: 'https://cloudformation-custom-resource-response.example/secret',
    StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/Stack/guid',
    RequestId: requestId,
    LogicalResourceId: 'ApiDeployment',
    ResourceType: 'Custom::CdkRollbackAliasDeployment',
    ResourceProperties: resourceProperties,
  };
  if (type === 'Create') return { ...base, RequestType: 'Create' };
  if (type === 'Update') {
    return { ...base, RequestType: 'Update', PhysicalResourceId: 'fn:live', OldResourceProperties: resourceProperties };
  }
  return { ...base, RequestType: 'Delete', PhysicalResourceId: 'fn:live' };
}
