// Reading a Lambda alias, shared by the alias-deployment handler and the CLI (which must not load the handler's
// CodeDeploy code for its first round trip).
import { GetAliasCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { AliasConfiguration } from '@aws-sdk/client-lambda';

/** An alias, or undefined when the function has no alias of that name. */
export async function getAlias(client: LambdaClient, functionName: string, name: string): Promise<AliasConfiguration | undefined> {
  try {
    return await client.send(new GetAliasCommand({ FunctionName: functionName, Name: name }));
  } catch (e) {
    if ((e as Error).name === 'ResourceNotFoundException') return undefined;
    throw e;
  }
}
