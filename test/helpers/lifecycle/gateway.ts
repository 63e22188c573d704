/**
 * The lifecycle driver's loopback endpoint (AWS_ENDPOINT_URL for handlers and CLI alike). It routes each
 * request by the service in its SigV4/SigV4A credential scope:
 * - CodeDeploy -> the in-memory CodeDeploy (codedeploy.ts), JSON 1.1 protocol;
 * - CloudFormation DescribeStacks of the driver's stack -> the stack status the driver sets per phase
 *   (moto cannot put a stack in UPDATE_ROLLBACK_IN_PROGRESS), query protocol XML;
 * - CloudFront KeyValueStore (`/key-value-stores/...`) -> the KVS stand-in (test/fixtures/cli/kvs-server.ts);
 * - everything else (Lambda, S3, RDS, CloudFront, SSM, STS, IAM) -> moto_server.
 * Before every request it settles CodeDeploy (transitions due on the simulated clock), so an alias read from
 * Lambda is as current as a deployment read from CodeDeploy. It can inject throttling into any call.
 */
import * as http from 'http';
import type { AddressInfo } from 'net';
import { CodeDeployError, InMemoryCodeDeploy } from './codedeploy';

export interface StackView {
  readonly stackId: string;
  readonly stackName: string;
  status: string;
  readonly createdAt: number;
}

export interface CallRecord {
  readonly service: string;
  readonly operation: string;
  readonly throttled: boolean;
}

/**
 * Throttling that does not depend on how concurrent requests interleave (so a seed replays): a request is
 * throttled when a hash of (seed, its service and operation, how many such requests came before it) falls in
 * one of `oneIn` buckets; its next `burst - 1` attempts (the SDK's retries) are throttled too.
 */
export interface ThrottlePlan {
  readonly seed: number;
  readonly oneIn: number;
  readonly burst: number;
  /** Only this service (signing name, e.g. `lambda`, `s3`, `codedeploy`, `cloudfront-keyvaluestore`). */
  readonly service?: string;
  /** Instead of the hash: throttles the requests this picks (service and operation, occurrence from 0). */
  readonly pick?: (signature: string, occurrence: number) => boolean;
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}

export interface Gateway {
  readonly endpoint: string;
  /**
   * Lambda versions deleted through the gateway (`function:version`). moto numbers a new version
   * `len(versions) + 1`, so after a real delete it would publish a number again; Lambda never reuses one. The
   * gateway therefore keeps deleted versions in moto and hides them: reads answer 404, listings omit them,
   * aliases cannot point at them.
   */
  readonly deletedVersions: Set<string>;
  /** Every request seen (including throttled ones), oldest first. */
  readonly calls: CallRecord[];
  /** Arms throttling (see ThrottlePlan) until clearThrottles(). */
  throttle(plan: ThrottlePlan): void;
  clearThrottles(): void;
  close(): Promise<void>;
}

function serviceOf(req: http.IncomingMessage, path: string): string {
  if (path.startsWith('/key-value-stores/')) return 'cloudfront-keyvaluestore';
  const auth = String(req.headers.authorization ?? '');
  const m = /Credential=([^,\s]+)/.exec(auth);
  if (!m) return 'unknown';
  const scope = m[1].split('/');
  return scope[scope.length - 2] ?? 'unknown';
}

function operationOf(service: string, req: http.IncomingMessage, path: string, body: string): string {
  const target = String(req.headers['x-amz-target'] ?? '');
  if (target) return target.split('.').pop() ?? target;
  if (['cloudformation', 'rds', 'sts', 'iam'].includes(service)) {
    const action = new URLSearchParams(body).get('Action');
    if (action) return action;
  }
  return `${req.method} ${path.replace(/\?.*$/, '')}`;
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function throttleResponse(service: string, res: http.ServerResponse): void {
  const message = 'Rate exceeded (throttling injected by the lifecycle driver)';
  if (service === 's3') {
    res.writeHead(503, { 'content-type': 'application/xml' });
    res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>${message}</Message><RequestId>x</RequestId></Error>`);
  } else if (['cloudformation', 'rds', 'sts', 'iam', 'cloudfront'].includes(service)) {
    res.writeHead(400, { 'content-type': 'text/xml' });
    res.end(`<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>${message}</Message></Error><RequestId>x</RequestId></ErrorResponse>`);
  } else {
    const type = service === 'lambda' ? 'TooManyRequestsException' : 'ThrottlingException';
    res.writeHead(429, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type });
    res.end(JSON.stringify({ __type: type, message, Reason: 'CallerRateLimitExceeded' }));
  }
}

function describeStacksXml(stack: StackView): string {
  const iso = new Date(stack.createdAt).toISOString();
  return '<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member>' +
    `<StackId>${xmlEscape(stack.stackId)}</StackId><StackName>${xmlEscape(stack.stackName)}</StackName>` +
    `<StackStatus>${stack.status}</StackStatus><CreationTime>${iso}</CreationTime><LastUpdatedTime>${iso}</LastUpdatedTime>` +
    '<DisableRollback>false</DisableRollback><Tags/><Outputs/><Parameters/>' +
    '</member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>lifecycle-driver</RequestId></ResponseMetadata></DescribeStacksResponse>';
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 16 });

const notFound = (res: http.ServerResponse, message: string) => {
  res.writeHead(404, { 'content-type': 'application/json', 'x-amzn-errortype': 'ResourceNotFoundException' });
  res.end(JSON.stringify({ Type: 'User', Message: message, message }));
};

/**
 * Lambda version deletes become tombstones (see Gateway.deletedVersions). Returns true when it answered the
 * request itself; `rewrite` is set when a listing must be filtered.
 */
async function lambdaTombstones(deleted: Set<string>, req: http.IncomingMessage, body: string, res: http.ServerResponse,
  beforeVersionDelete?: (functionName: string, version: string) => Promise<string | undefined>): Promise<{ handled: boolean; filterVersions?: string }> {
  const url = new URL(req.url ?? '/', 'http://x');
  const m = /^\/2015-03-31\/functions\/([^/]+)(\/.*)?$/.exec(url.pathname);
  if (!m) return { handled: false };
  const [name, inlineQualifier] = decodeURIComponent(m[1]).split(':');
  const rest = m[2] ?? '';
  const qualifier = url.searchParams.get('Qualifier') ?? inlineQualifier;
  const gone = (v: string | undefined) => v !== undefined && deleted.has(`${name}:${v}`);
  if (req.method === 'DELETE' && rest === '' && qualifier && /^\d+$/.test(qualifier)) {
    const conflict = gone(qualifier) ? undefined : await beforeVersionDelete?.(name, qualifier);
    if (gone(qualifier)) {
      notFound(res, `Function not found: ${name}:${qualifier}`);
    } else if (conflict) {
      res.writeHead(409, { 'content-type': 'application/json', 'x-amzn-errortype': 'ResourceConflictException' });
      res.end(JSON.stringify({ Type: 'User', Message: conflict, message: conflict }));
    } else {
      deleted.add(`${name}:${qualifier}`);
      res.writeHead(204);
      res.end();
    }
    return { handled: true };
  }
  if (req.method === 'GET' && (rest === '' || rest === '/configuration') && gone(qualifier)) {
    notFound(res, `Function not found: arn:aws:lambda:us-east-1:123456789012:function:${name}:${qualifier}`);
    return { handled: true };
  }
  if ((req.method === 'POST' && rest === '/aliases') || (req.method === 'PUT' && rest.startsWith('/aliases/'))) {
    const doc = body ? JSON.parse(body) as { FunctionVersion?: string; RoutingConfig?: { AdditionalVersionWeights?: Record<string, number> } } : {};
    const targets = [doc.FunctionVersion, ...Object.keys(doc.RoutingConfig?.AdditionalVersionWeights ?? {})];
    const bad = targets.find((v) => gone(v));
    if (bad) {
      notFound(res, `Function not found: arn:aws:lambda:us-east-1:123456789012:function:${name}:${bad}`);
      return { handled: true };
    }
  }
  if (req.method === 'GET' && rest === '/versions') return { handled: false, filterVersions: name };
  return { handled: false };
}

function forward(target: string, req: http.IncomingMessage, body: Buffer, res: http.ServerResponse, date: string,
  transform?: (json: Record<string, unknown>) => Record<string, unknown>): void {
  const url = new URL(target);
  const headers = { ...req.headers, host: url.host, 'content-length': String(body.length) };
  delete headers.expect;
  delete headers['transfer-encoding'];
  const up = http.request({ host: url.hostname, port: url.port, path: req.url, method: req.method, headers, agent: keepAlive }, (upRes) => {
    if (!transform || upRes.statusCode !== 200) {
      res.writeHead(upRes.statusCode ?? 502, { ...upRes.headers, date });
      upRes.pipe(res);
      return;
    }
    const chunks: Buffer[] = [];
    upRes.on('data', (c: Buffer) => chunks.push(c));
    upRes.on('end', () => {
      const out = Buffer.from(JSON.stringify(transform(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>)));
      res.writeHead(200, { ...upRes.headers, date, 'content-length': String(out.length) });
      res.end(out);
    });
  });
  up.on('socket', (socket) => socket.setNoDelay(true));
  up.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
  up.end(body);
}

export async function startGateway(o: {
  motoEndpoint: string;
  kvsEndpoint: string;
  codedeploy: InMemoryCodeDeploy;
  stacks: () => StackView[];
  /** Asked before a Lambda version is deleted; a message refuses it with ResourceConflictException (409). */
  beforeVersionDelete?: (functionName: string, version: string) => Promise<string | undefined>;
}): Promise<Gateway> {
  const calls: CallRecord[] = [];
  const deletedVersions = new Set<string>();
  let plan: ThrottlePlan | undefined;
  const occurrences = new Map<string, number>();
  const retries = new Map<string, number>();
  const exempt = new Set<string>();

  const shouldThrottle = (service: string, signature: string): boolean => {
    if (!plan || (plan.service && plan.service !== service)) return false;
    const pending = retries.get(signature) ?? 0;
    if (pending > 0) {
      retries.set(signature, pending - 1);
      return true;
    }
    const n = occurrences.get(signature) ?? 0;
    occurrences.set(signature, n + 1);
    // The attempt after a burst goes through, so a burst stays within the SDK's three attempts.
    if (exempt.delete(signature)) return false;
    if (plan.pick ? !plan.pick(signature, n) : hash(`${plan.seed} ${signature} ${n}`) % plan.oneIn !== 0) return false;
    retries.set(signature, plan.burst - 1);
    exempt.add(signature);
    return true;
  };

  const server = http.createServer({ noDelay: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const text = body.toString('utf8');
        const path = req.url ?? '/';
        const service = serviceOf(req, path);
        const operation = operationOf(service, req, path, text);
        const signature = `${service} ${operation}`;
        // The servers behind answer with the real time; the SDK would take the simulated clock for skew.
        const date = new Date(Date.now()).toUTCString();
        res.setHeader('date', date);
        const throttled = shouldThrottle(service, signature);
        calls.push({ service, operation, throttled });
        if (throttled) return throttleResponse(service, res);

        await o.codedeploy.settle();
        if (service === 'codedeploy') {
          try {
            const out = o.codedeploy.handle(operation, text ? JSON.parse(text) as Record<string, unknown> : {});
            res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
            res.end(JSON.stringify(out));
          } catch (e) {
            const type = e instanceof CodeDeployError ? e.type : 'InternalFailure';
            res.writeHead(e instanceof CodeDeployError ? 400 : 500, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type });
            res.end(JSON.stringify({ __type: type, message: (e as Error).message }));
          }
          return undefined;
        }
        if (service === 'cloudformation' && operation === 'DescribeStacks') {
          const name = new URLSearchParams(text).get('StackName');
          const stack = o.stacks().find((s) => s.stackId === name || s.stackName === name);
          if (stack) {
            res.writeHead(200, { 'content-type': 'text/xml' });
            res.end(describeStacksXml(stack));
            return undefined;
          }
          res.writeHead(400, { 'content-type': 'text/xml' });
          res.end(`<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id ${xmlEscape(String(name))} does not exist</Message></Error><RequestId>x</RequestId></ErrorResponse>`);
          return undefined;
        }
        if (service === 'lambda') {
          const t = await lambdaTombstones(deletedVersions, req, text, res, o.beforeVersionDelete);
          if (t.handled) return undefined;
          if (t.filterVersions) {
            const fn = t.filterVersions;
            return forward(o.motoEndpoint, req, body, res, date, (doc) => ({
              ...doc,
              Versions: ((doc.Versions as { Version?: string }[] | undefined) ?? []).filter((v) => !deletedVersions.has(`${fn}:${v.Version}`)),
            }));
          }
        }
        return forward(service === 'cloudfront-keyvaluestore' ? o.kvsEndpoint : o.motoEndpoint, req, body, res, date);
      })().catch((e: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json', 'x-amzn-errortype': 'InternalFailure' });
        res.end(JSON.stringify({ __type: 'InternalFailure', message: String(e) }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    deletedVersions,
    throttle(p) {
      plan = p;
      occurrences.clear();
      retries.clear();
      exempt.clear();
    },
    clearThrottles() {
      plan = undefined;
      occurrences.clear();
      retries.clear();
      exempt.clear();
    },
    close() {
      server.closeAllConnections();
      keepAlive.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
