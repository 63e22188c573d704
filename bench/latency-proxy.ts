/**
 * Bench only: a loopback HTTP proxy that delays every request by a fixed latency before it forwards it, and
 * counts what passes through (requests per operation, bytes each way, the most requests in flight at once).
 *
 * With `latencyMs: 0` it only counts (requests are forwarded at once). With 20 ms it models S3 (and
 * CloudFront, and the KeyValueStore) seen from a Lambda function: a handler that sends its requests one after
 * the other pays 20 ms per request, one that keeps N in flight pays about 20 ms / N per request. Bandwidth is
 * not throttled: bytes moved are counted and reported, not delayed.
 */
import * as http from 'http';

export interface ProxyCounts {
  requests: number;
  bytesUp: number;
  bytesDown: number;
  maxInFlight: number;
  /** `service Operation` -> count (S3 PutObject, GetObject, ...). */
  operations: Map<string, number>;
}

export interface LatencyProxy {
  readonly endpoint: string;
  close(): Promise<void>;
}

/** Where a proxy adds its counts; several proxies may share one sink, the bench swaps `counts` between runs. */
export interface CountSink { counts: ProxyCounts }

export function emptyCounts(): ProxyCounts {
  return { requests: 0, bytesUp: 0, bytesDown: 0, maxInFlight: 0, operations: new Map() };
}

/** A short name for a request: `s3 PutObject`, `cloudfront CreateInvalidation`, `kvs UpdateKeys`. */
function operationOf(req: http.IncomingMessage, kvs: boolean): string {
  const method = req.method ?? '';
  const [pathname, query = ''] = (req.url ?? '/').split('?');
  if (kvs) {
    if (/\/keys\/[^/]+$/.test(pathname)) return `kvs ${method === 'GET' ? 'GetKey' : method === 'PUT' ? 'PutKey' : 'DeleteKey'}`;
    if (/\/keys$/.test(pathname)) return `kvs ${method === 'POST' ? 'UpdateKeys' : 'ListKeys'}`;
    return 'kvs DescribeKeyValueStore';
  }
  const scope = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(String(req.headers.authorization ?? ''));
  const service = scope?.[1] ?? '?';
  if (service === 'cloudfront') {
    if (method === 'POST' && pathname.endsWith('/invalidation')) return 'cloudfront CreateInvalidation';
    if (method === 'GET' && /\/invalidation\/[^/]+$/.test(pathname)) return 'cloudfront GetInvalidation';
    return `cloudfront ${method} ${pathname}`;
  }
  // The Query protocol names the action in the body, which is forwarded unread: the handler's only call is DescribeStacks.
  if (service === 'cloudformation') return 'cloudformation (Query API call)';
  if (service === 's3') {
    const params = new URLSearchParams(query);
    const hasKey = pathname.split('/').filter((s) => s.length > 0).length > 1;
    if (method === 'PUT') return hasKey ? (req.headers['x-amz-copy-source'] ? 's3 CopyObject' : 's3 PutObject') : 's3 CreateBucket';
    if (method === 'GET') return hasKey ? (req.headers.range ? 's3 GetObject (range)' : 's3 GetObject') : params.has('list-type') ? 's3 ListObjectsV2' : 's3 ListObjects';
    if (method === 'HEAD') return hasKey ? 's3 HeadObject' : 's3 HeadBucket';
    if (method === 'POST' && params.has('delete')) return 's3 DeleteObjects';
    if (method === 'DELETE') return 's3 DeleteObject';
    return `s3 ${method}`;
  }
  return `${service} ${method}`;
}

export async function startLatencyProxy(opts: { target: string; latencyMs: number; sink: CountSink; kvs?: boolean }): Promise<LatencyProxy> {
  const upstream = new URL(opts.target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  let inFlight = 0;
  const server = http.createServer((req, res) => {
    const c = opts.sink.counts;
    c.requests++;
    const op = operationOf(req, opts.kvs ?? false);
    c.operations.set(op, (c.operations.get(op) ?? 0) + 1);
    inFlight++;
    c.maxInFlight = Math.max(c.maxInFlight, inFlight);
    let done = false;
    const finish = () => { if (!done) { done = true; inFlight--; } };
    res.on('close', finish);
    // The body is read only once forwarding starts (a 'data' listener now would let it flow away unforwarded).
    const forward = () => {
      req.on('data', (b: Buffer) => { c.bytesUp += b.length; });
      const up = http.request({
        host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent,
      }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.on('data', (b: Buffer) => { c.bytesDown += b.length; });
        r.pipe(res);
      });
      up.on('error', (e) => {
        if (!res.headersSent) res.writeHead(502);
        res.end(String(e));
      });
      req.pipe(up);
    };
    if (opts.latencyMs > 0) setTimeout(forward, opts.latencyMs);
    else forward();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = addr && typeof addr === 'object' ? addr.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
