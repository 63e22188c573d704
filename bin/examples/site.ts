import * as path from 'path';
import { Stack } from 'aws-cdk-lib';
import { VersionedSite } from '../../lib/versioned-site';

/**
 * The example app's frontend: the tiny built site in `bin/example-site/` released as an immutable release
 * behind CloudFront. Add it last, so a failure anywhere earlier in the stack update rolls the site back too.
 */
export function addExampleSite(stack: Stack): VersionedSite {
  return new VersionedSite(stack, 'Site', {
    source: path.join(__dirname, '..', 'example-site'),
    retainReleases: 5,
    contentSecurityPolicy: "default-src 'self'",
  });
}
