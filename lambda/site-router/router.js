import cf from 'cloudfront';
// cdk-rollback VersionedSite router: viewer request, runtime cloudfront-js-2.0.
// The construct fills the __PLACEHOLDERS__ at synth (lib/private/site-router.ts).
var kvs = cf.kvs();
var IMMUTABLE = /__IMMUTABLE__/;
var SPA = __SPA__;

async function handler(event) {
  var req = event.request;
  var uri = req.uri;
  // Content-hashed files live in the shared pool: a tab holding an older release's HTML still finds them.
  if (IMMUTABLE.test(uri)) {
    req.uri = '/__POOL__' + uri.slice(1);
    return req;
  }
  var id;
  try {
    id = await kvs.get('__ACTIVE__');
  } catch (e) {
    return { statusCode: 503, statusDescription: 'Service Unavailable', headers: { 'cache-control': { value: 'no-store' } } };
  }
  if (uri.charAt(uri.length - 1) === '/') {
    uri += 'index.html';
  } else if (uri.lastIndexOf('.') < uri.lastIndexOf('/')) {
    // extension-less route
    uri = SPA ? '/index.html' : uri + '/index.html';
  }
  req.uri = '/__RELEASES__' + id + uri;
  return req;
}
