import cf from 'cloudfront';
// cdk-rollback VersionedSite router: viewer request, runtime cloudfront-js-2.0.
// The construct fills the __PLACEHOLDERS__ at synth (lib/private/site-router.ts).
var kvs = cf.kvs();
var PREFIX = __PREFIX__;
var HASHES = __HASHES__;
var SPA = __SPA__;

function deny(code, text) {
  return { statusCode: code, statusDescription: text, headers: { 'cache-control': { value: 'no-store' } } };
}

// The release handler's immutable-path rule, evaluated in one pass over the file name (time linear in the URI).
function sig(r) {
  return r.length > 7 && /[A-Za-z]/.test(r) && (/\d/.test(r) || (/[a-z]/.test(r) && /[A-Z]/.test(r)));
}
function immutable(u) {
  if (/\.html?$/.test(u)) return false;
  if (PREFIX && PREFIX.test(u)) return true;
  if (!HASHES) return false;
  // name[.-]<hash>.<ext>[.<ext>...]: the extensions are the trailing alphanumeric pieces
  var p = u.slice(u.lastIndexOf('/') + 1).split('.');
  var k = p.length - 1;
  var j = k + 1;
  while (j > 1 && /^[A-Za-z0-9]+$/.test(p[j - 1])) j--;
  if (j > k) return false;
  for (var i = j; i < k; i++) if (sig(p[i])) return true;
  var w = p[j - 1].replace(/^[\s\S]*[^\w-]/, '');
  if (j > 1 && w === p[j - 1]) return sig(w);
  var d = w.indexOf('-');
  return d >= 0 && sig(w.slice(d + 1));
}

async function handler(event) {
  var req = event.request;
  var uri = req.uri;
  // No key of a site is longer: refuse before any matching.
  if (uri.length > __MAX_URI__) return deny(414, 'URI Too Long');
  // Path tricks never reach the origin: encoded slashes and backslashes, dot segments (raw, encoded or
  // double-encoded), control characters and malformed escapes.
  var path;
  try {
    path = decodeURIComponent(uri);
  } catch (e) {
    return deny(400, 'Bad Request');
  }
  if (/%(2f|5c)|\\/i.test(uri) || /%(2e|2f|5c)|\\|[\x00-\x1f\x7f]|(^|\/)\.\.?(\/|$)/i.test(path)) {
    return deny(400, 'Bad Request');
  }
  // Content-hashed files live in the shared pool: a tab holding an older release's HTML still finds them.
  if (immutable(uri)) {
    req.uri = '/__POOL__' + uri.slice(1);
    return req;
  }
  var id;
  try {
    id = await kvs.get('__ACTIVE__');
  } catch (e) {
    return deny(503, 'Service Unavailable');
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
