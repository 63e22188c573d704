import { CfnResource } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';
import { CLI_METADATA_KEY, CliMetadata, ConstructKind } from './contract';

/**
 * Marks a CloudFormation resource for the `cdk-rollback` CLI: it reads the
 * deployed template (GetTemplate), finds resources by this metadata entry and
 * maps their logical IDs to physical IDs (ListStackResources).
 *
 * `owner` is the construct (SafeLambdaApi, VersionedSite...) whose path the CLI
 * shows and accepts in `--target`.
 */
export function markForCli(resource: IConstruct, owner: IConstruct, kind: ConstructKind, role: string): void {
  const cfn = resource instanceof CfnResource ? resource : resource.node.defaultChild;
  if (!(cfn instanceof CfnResource)) {
    throw new Error(`cdk-rollback: cannot mark ${resource.node.path} for the CLI: it has no CloudFormation resource`);
  }
  const entry: CliMetadata = { version: 1, kind, role, path: owner.node.path };
  cfn.addMetadata(CLI_METADATA_KEY, entry);
}
