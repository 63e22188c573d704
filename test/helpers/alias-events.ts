import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import {
  type CloudFormationClientResolvedConfig,
  DescribeStacksCommand,
  type ServiceInputTypes,
  type ServiceOutputTypes,
  type StackStatus,
} from '@aws-sdk/client-cloudformation';
import type { AwsStub } from 'aws-sdk-client-mock';
import type { AliasDeploymentProperties } from '../../lambda/alias-deployment/index';
import { event } from './lambda-fixtures';

/**
 * An Update of the alias-deployment custom resource as CloudFormation sends it: the new properties and
 * the OLD ones (a forward update has old TargetVersion < new; the rollback Update has them reversed).
 */
export function updateEvent(
  props: Partial<AliasDeploymentProperties>,
  oldProps: Partial<AliasDeploymentProperties>,
  requestId = 'request-Update',
): CloudFormationCustomResourceEvent {
  const base = event('Update', props, requestId);
  const old = event('Update', { ...props, ...oldProps }, requestId).ResourceProperties;
  return { ...base, OldResourceProperties: old } as CloudFormationCustomResourceEvent;
}

/** The stack status DescribeStacks answers (a mocked CloudFormation client), e.g. UPDATE_ROLLBACK_IN_PROGRESS. */
export function setStackStatus(cfn: AwsStub<ServiceInputTypes, ServiceOutputTypes, CloudFormationClientResolvedConfig>, status: StackStatus): void {
  cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'Stack', StackStatus: status, CreationTime: new Date(0) }] });
}
