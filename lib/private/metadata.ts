import { CfnResource, Stack } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';
import { CLI_METADATA_KEY, CliMetadata, CliStackMetadata, ConstructKind } from '../../lambda/shared/contract';

/**
 * Marks a CloudFormation resource for the `cdk-rollback` CLI: it reads the
 * deployed template (GetTemplate), finds resources by this metadata entry and
 * maps their logical IDs to physical IDs (ListStackResources).
 *
 * `owner` is the construct (SafeLambdaApi, VersionedSite...) whose path the CLI
 * shows and accepts in `--target`.
 *
 * The resource's stack is marked too, in the template-level `Metadata` (the owners, sorted by path): the CLI's
 * `status` without `--stack` finds the stacks that hold cdk-rollback constructs with GetTemplateSummary, without
 * reading every template in full.
 */
export function markForCli(resource: IConstruct, owner: IConstruct, kind: ConstructKind, role: string): void {
  const cfn = resource instanceof CfnResource ? resource : resource.node.defaultChild;
  if (!(cfn instanceof CfnResource)) {
    throw new Error(`cdk-rollback: cannot mark ${resource.node.path} for the CLI: it has no CloudFormation resource`);
  }
  const entry: CliMetadata = { version: 1, kind, role, path: owner.node.path };
  cfn.addMetadata(CLI_METADATA_KEY, entry);
  markStack(Stack.of(cfn), kind, owner.node.path);
}

function markStack(stack: Stack, kind: ConstructKind, path: string): void {
  const existing = stack.templateOptions.metadata?.[CLI_METADATA_KEY] as CliStackMetadata | undefined;
  const constructs = [...(existing?.constructs ?? [])];
  if (constructs.some((c) => c.kind === kind && c.path === path)) return;
  constructs.push({ kind, path });
  constructs.sort((a, b) => (a.path === b.path ? (a.kind < b.kind ? -1 : 1) : a.path < b.path ? -1 : 1));
  const marker: CliStackMetadata = { version: 1, constructs };
  stack.addMetadata(CLI_METADATA_KEY, marker);
}
