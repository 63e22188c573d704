// Retention, as README states it: keeps the newest `retain` releases by creation time PLUS the active and the
// previous one (never pruned), deletes the files of the others and the pool objects that no kept release references.
import { S3Client } from '@aws-sdk/client-s3';
import { SITE_RELEASES_PREFIX } from '../shared/contract';
import { SITE_POOL_PREFIX } from '../shared/site-contract';
import { ReleaseRecord, readHistory, writeHistory } from './activate';
import { deleteKeys, getManifest, listKeys, manifestKey } from './bucket';

export interface PruneResult {
  readonly pruned: string[];
  readonly kept: string[];
  readonly poolObjectsDeleted: number;
}

/**
 * The releases retention keeps: the newest `retain` non-failed releases of the history (newest first by creation
 * time), plus those the history marks active or previous, plus `protect` (the KeyValueStore's `active` and
 * `previous` keys as the caller read them, which win over a stale history).
 */
export function releasesToKeep(history: readonly ReleaseRecord[], retain: number, protect: readonly (string | undefined)[] = []): Set<string> {
  const live = history.filter((r) => r.status !== 'pruned');
  const keep = new Set<string>(protect.filter((id): id is string => id !== undefined && id !== ''));
  for (const r of live) if (r.status === 'active' || r.status === 'previous') keep.add(r.id);
  for (const r of live.filter((x) => x.status !== 'failed').slice(0, Math.max(0, retain))) keep.add(r.id);
  return keep;
}

export async function pruneReleases(
  s3: S3Client, bucketName: string, retain: number, log: (line: string) => void = () => undefined, protect: readonly (string | undefined)[] = [],
): Promise<PruneResult> {
  const history = await readHistory(s3, bucketName); // newest first
  const live = history.filter((r) => r.status !== 'pruned');
  const keep = releasesToKeep(history, retain, protect);
  const doomed: ReleaseRecord[] = live.filter((r) => !keep.has(r.id));

  for (const r of doomed) {
    // The manifest goes first: a release without its manifest can no longer be activated half-deleted.
    await deleteKeys(s3, bucketName, [manifestKey(r.id)]);
    const keys = [...(await listKeys(s3, bucketName, `${SITE_RELEASES_PREFIX}${r.id}/`)).keys()];
    await deleteKeys(s3, bucketName, keys);
    r.status = 'pruned';
    log(`pruned release ${r.id} (${keys.length} files)`);
  }

  // Pool objects referenced by no kept release.
  const referenced = new Set<string>();
  const unknown: string[] = [];
  for (const id of keep) {
    const m = await getManifest(s3, bucketName, id);
    if (!m && !history.some((r) => r.id === id && r.status === 'failed')) unknown.push(id);
    for (const [path, f] of Object.entries(m?.files ?? {})) if (f.pooled) referenced.add(`${SITE_POOL_PREFIX}${path}`);
  }
  if (unknown.length > 0) {
    // A kept release whose manifest cannot be read may still reference pool objects: delete none.
    log(`kept release(s) ${unknown.join(', ')} have no manifest: pool objects are left alone`);
    if (doomed.length > 0) await writeHistory(s3, bucketName, history);
    return { pruned: doomed.map((r) => r.id), kept: [...keep], poolObjectsDeleted: 0 };
  }
  const orphans = [...(await listKeys(s3, bucketName, SITE_POOL_PREFIX)).keys()].filter((k) => !referenced.has(k));
  await deleteKeys(s3, bucketName, orphans);
  if (orphans.length > 0) log(`deleted ${orphans.length} pool object(s) no retained release references`);

  if (doomed.length > 0) await writeHistory(s3, bucketName, history);
  return { pruned: doomed.map((r) => r.id), kept: [...keep], poolObjectsDeleted: orphans.length };
}
