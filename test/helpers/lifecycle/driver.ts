/**
 * A CloudFormation lifecycle driver for the library's custom resources: it plays CloudFormation and the
 * CDK Provider framework (onEvent + isComplete waiter) the way they behave in AWS, against the PREBUNDLED
 * handlers (dist/handlers/<name>/index.js, built by `npm run build`) loaded in this process.
 *
 * - Create / Update / Delete events with RequestId, StackId, LogicalResourceId, PhysicalResourceId and, on
 *   Update, OldResourceProperties. CloudFormation only sends an Update when a property changed.
 * - The Provider framework: onEvent's result is merged into the event (`{...event, ...result}`, the physical id
 *   defaulting to the request's), then isComplete is polled: the first poll at once, then every
 *   `queryInterval` of simulated time, and the event fails with "Operation timed out" past `totalTimeout`.
 *   isComplete's Data is merged into onEvent's. A throw fails the event; `IsComplete: false` with Data fails it
 *   too, as the framework does. Each handler invocation is also bounded in real time, so a hang is reported as
 *   exceeding its bound instead of hanging the test.
 * - A stack update: resources updated in template order with status UPDATE_IN_PROGRESS; when one fails (or a
 *   later resource fails, `failAfter`), UPDATE_ROLLBACK_IN_PROGRESS and a rollback Update (properties reversed)
 *   to every resource that was sent an update, the failed one included, in reverse order; then the cleanup
 *   phase and UPDATE_COMPLETE / UPDATE_ROLLBACK_COMPLETE. A rollback Update that fails ends in
 *   UPDATE_ROLLBACK_FAILED (and CloudFormation stops there).
 * - The stack status of each phase is what the handlers read with DescribeStacks (served by the gateway).
 * - Retried events: `duplicate` delivers the same event (same RequestId) to onEvent twice, as a Lambda async
 *   retry after the framework's onEvent function timed out would.
 */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import * as path from 'path';
import type { SimClock } from './clock';
import type { StackView } from './gateway';

export interface ProviderSettings {
  /** dist/handlers/<handler>/index.js */
  readonly handler: string;
  readonly queryIntervalSeconds: number;
  readonly totalTimeoutSeconds: number;
  /** Real milliseconds one handler invocation may take before it counts as hung. */
  readonly realBoundMs?: number;
}

export interface ResourceSpec {
  readonly logicalId: string;
  readonly resourceType: string;
  readonly provider: ProviderSettings;
}

export type Props = Record<string, string>;

export type EventStatus = 'SUCCESS' | 'FAILED' | 'TIMED_OUT' | 'HUNG';

export interface EventRecord {
  readonly logicalId: string;
  readonly requestType: 'Create' | 'Update' | 'Delete';
  readonly phase: 'forward' | 'rollback' | 'cleanup' | 'delete';
  readonly stackStatus: string;
  readonly requestId: string;
  readonly status: EventStatus;
  readonly reason?: string;
  readonly polls: number;
  readonly simulatedSeconds: number;
  /** Real milliseconds the event took (handler invocations and the driver's polling). */
  readonly realMs: number;
  readonly oldProps?: Props;
  readonly props: Props;
  readonly data?: Record<string, unknown>;
}

export interface UpdateResult {
  readonly outcome: 'UPDATE_COMPLETE' | 'UPDATE_ROLLBACK_COMPLETE' | 'UPDATE_ROLLBACK_FAILED' | 'CREATE_COMPLETE' | 'CREATE_FAILED';
  readonly events: EventRecord[];
}

export interface UpdateOptions {
  /** A resource after all of ours fails, so the stack rolls back (the "later resource failing"). */
  readonly failAfter?: boolean;
  /** Logical ids whose event is delivered twice with the same RequestId. */
  readonly duplicate?: string[];
  /** Called before each event (for example to arm throttling or to record what serves). */
  readonly beforeEvent?: (e: { logicalId: string; phase: EventRecord['phase']; requestType: string }) => Promise<void> | void;
  /** Called after each event. */
  readonly afterEvent?: (e: EventRecord) => Promise<void> | void;
}

interface Handler {
  onEvent(event: unknown): Promise<Record<string, unknown> | undefined>;
  isComplete?(event: unknown): Promise<{ IsComplete: boolean; Data?: Record<string, unknown> }>;
}

interface ResourceState {
  readonly spec: ResourceSpec;
  props?: Props;
  physicalId?: string;
}

const REPO = path.resolve(__dirname, '..', '..', '..');
const ACCOUNT = '123456789012';

export function loadHandler(name: string): Handler {
  const file = path.join(REPO, 'dist', 'handlers', name, 'index.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file) as Handler;
}

class Bounded extends Error {}

async function bounded<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Bounded(`${what} did not return within ${ms} ms (real time)`)), ms); }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

let requestCounter = 0;

export class LifecycleStack implements StackView {
  readonly stackId: string;
  status = 'REVIEW_IN_PROGRESS';
  readonly createdAt: number;
  readonly history: EventRecord[] = [];
  private readonly resources: ResourceState[];

  constructor(readonly stackName: string, specs: ResourceSpec[], private readonly clock: SimClock) {
    this.stackId = `arn:aws:cloudformation:us-east-1:${ACCOUNT}:stack/${stackName}/0f1e2d3c-${String(Date.now() % 1e8).padStart(8, '0')}`;
    this.createdAt = clock.now();
    this.resources = specs.map((spec) => ({ spec }));
  }

  /** The properties CloudFormation last applied successfully to a resource. */
  propsOf(logicalId: string): Props | undefined {
    return this.resources.find((r) => r.spec.logicalId === logicalId)?.props;
  }

  private event(r: ResourceState, requestType: 'Create' | 'Update' | 'Delete', props: Props, oldProps: Props | undefined, requestId: string): CloudFormationCustomResourceEvent {
    const serviceToken = `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${this.stackName}-${r.spec.provider.handler}-framework-onEvent`;
    const base = {
      ServiceToken: serviceToken,
      ResponseURL: `https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/${encodeURIComponent(this.stackId)}%7C${r.spec.logicalId}%7C${requestId}?X-Amz-Signature=secret`,
      StackId: this.stackId,
      RequestId: requestId,
      LogicalResourceId: r.spec.logicalId,
      ResourceType: r.spec.resourceType,
      ResourceProperties: { ServiceToken: serviceToken, ...props },
    };
    if (requestType === 'Create') return { ...base, RequestType: 'Create' };
    if (requestType === 'Update') {
      return { ...base, RequestType: 'Update', PhysicalResourceId: r.physicalId!, OldResourceProperties: { ServiceToken: serviceToken, ...oldProps } };
    }
    return { ...base, RequestType: 'Delete', PhysicalResourceId: r.physicalId! };
  }

  /** One event through the Provider framework; never throws for a handler failure (it is recorded). */
  async runEvent(r: ResourceState, requestType: 'Create' | 'Update' | 'Delete', phase: EventRecord['phase'], props: Props, oldProps: Props | undefined,
    o: { duplicate?: boolean } = {}): Promise<EventRecord & { physicalId?: string }> {
    const requestId = `${String(++requestCounter).padStart(4, '0')}-${r.spec.logicalId}-${requestType}-${phase}`;
    const event = this.event(r, requestType, props, oldProps, requestId);
    const handler = loadHandler(r.spec.provider.handler);
    const realBound = r.spec.provider.realBoundMs ?? 30_000;
    const started = this.clock.now();
    const realStart = performance.now();
    let polls = 0;
    const record = (status: EventStatus, reason?: string, data?: Record<string, unknown>, physicalId?: string) => {
      const rec = {
        logicalId: r.spec.logicalId, requestType, phase, stackStatus: this.status, requestId, status, reason, polls,
        simulatedSeconds: Math.round((this.clock.now() - started) / 1000),
        realMs: Math.round(performance.now() - realStart), oldProps, props, data, physicalId,
      };
      this.history.push(rec);
      return rec;
    };
    const fail = (e: unknown) => record(e instanceof Bounded ? 'HUNG' : 'FAILED', (e as Error)?.message ?? String(e));

    let onEventResult: Record<string, unknown> | undefined;
    try {
      const sanitized = { ...event, ResponseURL: '...' };
      if (o.duplicate) {
        // The first delivery's result is lost (the framework's onEvent function timed out after it).
        await bounded(`onEvent of ${requestId} (first delivery)`, realBound, handler.onEvent(structuredClone(sanitized)));
      }
      onEventResult = await bounded(`onEvent of ${requestId}`, realBound, handler.onEvent(structuredClone(sanitized)));
    } catch (e) {
      return fail(e);
    }
    const physicalId = (onEventResult?.PhysicalResourceId as string | undefined) || (requestType === 'Create' ? requestId : r.physicalId!);
    if (requestType === 'Delete' && physicalId !== r.physicalId) {
      return record('FAILED', `DELETE: cannot change the physical resource ID from "${r.physicalId}" to "${physicalId}" during deletion`);
    }
    const merged: Record<string, unknown> = { ...event, ...onEventResult, PhysicalResourceId: physicalId };
    if (!handler.isComplete) return record('SUCCESS', undefined, merged.Data as Record<string, unknown>, physicalId);

    const interval = r.spec.provider.queryIntervalSeconds * 1000;
    const maxAttempts = Math.floor(r.spec.provider.totalTimeoutSeconds / r.spec.provider.queryIntervalSeconds);
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) this.clock.advance(interval);
      if (attempt > maxAttempts || this.clock.now() - started > r.spec.provider.totalTimeoutSeconds * 1000) {
        return record('TIMED_OUT', `Operation timed out (${r.spec.provider.totalTimeoutSeconds} s, ${polls} polls)`);
      }
      polls++;
      let result: { IsComplete: boolean; Data?: Record<string, unknown> };
      try {
        result = await bounded(`isComplete of ${requestId}`, realBound, handler.isComplete(structuredClone({ ...merged, ResponseURL: '...' })));
      } catch (e) {
        return fail(e);
      }
      if (!result?.IsComplete) {
        if (result?.Data && Object.keys(result.Data).length > 0) return record('FAILED', '"Data" is not allowed if "IsComplete" is "False"');
        continue;
      }
      const data = { ...(merged.Data as Record<string, unknown> | undefined), ...result.Data };
      return record('SUCCESS', undefined, data, physicalId);
    }
  }

  /** Creates the stack: a Create event per resource in order. */
  async create(props: Record<string, Props>, o: UpdateOptions = {}): Promise<UpdateResult> {
    this.status = 'CREATE_IN_PROGRESS';
    const events: EventRecord[] = [];
    for (const r of this.resources) {
      const p = props[r.spec.logicalId];
      if (!p) throw new Error(`create: no properties for ${r.spec.logicalId}`);
      await o.beforeEvent?.({ logicalId: r.spec.logicalId, phase: 'forward', requestType: 'Create' });
      const rec = await this.runEvent(r, 'Create', 'forward', p, undefined);
      events.push(rec);
      await o.afterEvent?.(rec);
      if (rec.status !== 'SUCCESS') {
        this.status = 'ROLLBACK_COMPLETE';
        return { outcome: 'CREATE_FAILED', events };
      }
      r.props = p;
      r.physicalId = rec.physicalId;
    }
    this.status = 'CREATE_COMPLETE';
    return { outcome: 'CREATE_COMPLETE', events };
  }

  /**
   * Updates the stack to `next` (properties per logical id; a resource left out keeps its properties).
   * Resources whose properties did not change get no event, as in CloudFormation.
   */
  async update(next: Record<string, Props>, o: UpdateOptions = {}): Promise<UpdateResult> {
    if (!['CREATE_COMPLETE', 'UPDATE_COMPLETE', 'UPDATE_ROLLBACK_COMPLETE'].includes(this.status)) {
      throw new Error(`stack ${this.stackName} is in ${this.status}: CloudFormation refuses an update`);
    }
    this.status = 'UPDATE_IN_PROGRESS';
    const events: EventRecord[] = [];
    const touched: { r: ResourceState; oldProps: Props; oldPhysicalId: string }[] = [];
    const replaced: { r: ResourceState; physicalId: string; props: Props }[] = [];
    let failed = false;
    for (const r of this.resources) {
      const p = next[r.spec.logicalId] ?? r.props!;
      if (JSON.stringify(p) === JSON.stringify(r.props)) continue;
      await o.beforeEvent?.({ logicalId: r.spec.logicalId, phase: 'forward', requestType: 'Update' });
      touched.push({ r, oldProps: r.props!, oldPhysicalId: r.physicalId! });
      const rec = await this.runEvent(r, 'Update', 'forward', p, r.props, { duplicate: o.duplicate?.includes(r.spec.logicalId) });
      events.push(rec);
      await o.afterEvent?.(rec);
      if (rec.status !== 'SUCCESS') {
        failed = true;
        break;
      }
      if (rec.physicalId && rec.physicalId !== r.physicalId) replaced.push({ r, physicalId: r.physicalId!, props: r.props! });
      r.props = p;
      r.physicalId = rec.physicalId;
    }
    if (!failed && !o.failAfter) {
      this.status = 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS';
      for (const x of replaced) {
        const saved = x.r.physicalId;
        x.r.physicalId = x.physicalId;
        const rec = await this.runEvent(x.r, 'Delete', 'cleanup', x.props, undefined);
        x.r.physicalId = saved;
        events.push(rec);
        await o.afterEvent?.(rec);
      }
      this.status = 'UPDATE_COMPLETE';
      return { outcome: 'UPDATE_COMPLETE', events };
    }

    this.status = 'UPDATE_ROLLBACK_IN_PROGRESS';
    for (const t of [...touched].reverse()) {
      const current = next[t.r.spec.logicalId] ?? t.r.props!;
      await o.beforeEvent?.({ logicalId: t.r.spec.logicalId, phase: 'rollback', requestType: 'Update' });
      // The failed resource keeps its old physical id; a completed one may have a new one.
      const rec = await this.runEvent(t.r, 'Update', 'rollback', t.oldProps, current);
      events.push(rec);
      await o.afterEvent?.(rec);
      if (rec.status !== 'SUCCESS') {
        this.status = 'UPDATE_ROLLBACK_FAILED';
        return { outcome: 'UPDATE_ROLLBACK_FAILED', events };
      }
      t.r.props = t.oldProps;
      if (rec.physicalId) t.r.physicalId = rec.physicalId;
    }
    this.status = 'UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS';
    this.status = 'UPDATE_ROLLBACK_COMPLETE';
    return { outcome: 'UPDATE_ROLLBACK_COMPLETE', events };
  }

  /** Deletes the stack: Delete events in reverse order. */
  async delete(): Promise<EventRecord[]> {
    this.status = 'DELETE_IN_PROGRESS';
    const events: EventRecord[] = [];
    for (const r of [...this.resources].reverse()) {
      if (!r.physicalId) continue;
      events.push(await this.runEvent(r, 'Delete', 'delete', r.props!, undefined));
    }
    this.status = events.every((e) => e.status === 'SUCCESS') ? 'DELETE_COMPLETE' : 'DELETE_FAILED';
    return events;
  }
}
