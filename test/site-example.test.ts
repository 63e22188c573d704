import { App, Stack } from 'aws-cdk-lib';
import { addExampleSite } from '../bin/examples/site';
import { synthAndValidate } from './helpers/synth-and-validate';

test('the example site passes cdk-nag and cfn-lint in an env-agnostic stack', () => {
  const app = new App();
  const stack = new Stack(app, 'ExampleSite');
  const site = addExampleSite(stack);
  const { templates } = synthAndValidate(app);
  templates.ExampleSite.hasResourceProperties('Custom::CdkRollbackSiteRelease', { ReleaseId: site.releaseId, RetainReleases: '5' });
});
