// The example app's tiny API handler (plain JavaScript: no bundling at synth).
exports.handler = async (event) => {
  const path = event.rawPath ?? event.path ?? '/';
  if (path === '/health') return { statusCode: 200, body: JSON.stringify({ ok: true }) };
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ hello: 'world', path, version: process.env.AWS_LAMBDA_FUNCTION_VERSION }),
  };
};
