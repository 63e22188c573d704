/**
 * The source of a consumer's CDK app, for `node -e`: stack `Consumer` in an App that writes to `outdir`, with a
 * SafeLambdaApi around an inline function, the library loaded with `require(lib)`. `rest` goes after it: more
 * constructs (it may use `lambda`, `lib`, `app`, `stack`, `handler`) and the synth.
 */
export function consumerApp(lib: string, outdir: string, rest: string): string {
  return `
    const { App, Stack } = require('aws-cdk-lib');
    const lambda = require('aws-cdk-lib/aws-lambda');
    const lib = require(${JSON.stringify(lib)});
    const app = new App({ outdir: ${JSON.stringify(outdir)} });
    const stack = new Stack(app, 'Consumer');
    const handler = new lambda.Function(stack, 'Fn', {
      runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => ({ statusCode: 200 })'),
    });
    new lib.SafeLambdaApi(stack, 'Api', { handler, smokeTest: { path: '/health' } });
${rest}`;
}
