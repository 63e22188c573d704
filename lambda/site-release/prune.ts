// Retention: keeps the newest `retain` releases, always the active and the previous one, deletes the files of
// the others and the pool objects that no kept release references.
import { S3Client } from '@aws-sdk/client-s3';
import { SITE_RELEASES_PREFIX } from '../../lib/private/contract';
import { SITE_POOL_PREFIX } from '../../lib/private/site-contract';
import { ReleaseRecord, readHistory, writeHistory } from './activate';
import { deleteKeys, getManifest, listKeys, manifestKey } from './bucket';

export interface PruneResult {
  readonly pruned: string[];
  readonly kept: string[];
  readonly poolObjectsDeleted: number;
}

export async function pruneReleases(s3: S3Client, bucketName: string, retain: number, log: (line: string) => void = () => undefined): Promise<PruneResult> {
  const history = await readHistory(s3, bucketName); // newest first
  const live = history.filter((r) => r.status !== 'pruned');
  const keep = new Set(live.filter((r) => r.status === 'active' || r.status === 'previous').map((r) => r.id));
  for (const r of live) {
    if (keep.size >= retain) break;
    if (r.status !== 'failed') keep.add(r.id);
  }
  const doomed: ReleaseRecord[] = live.filter((r) => !keep.has(r.id));

  for (const r of doomed) {
    // The manifest goes first: a release without its manifest can no longer be activated half-deleted.
    await deleteKeys(s3, bucketName, [manifestKey(r.id)]);
    const keys = [...(await listKeys(s3, bucketName, `${SITE_RELEASES_PREFIX}${r.id}/`)).keys()];
    await deleteKeys(s3, bucketName, keys);
    r.status = 'pruned';
    log(`pruned release ${r.id} (${keys.length} files)`);
  }

  // Pool objects referenced by no kept release. A kept release without a manifest references nothing.
  const referenced = new Set<string>();
  for (const id of keep) {
    const m = await getManifest(s3, bucketName, id);
    for (const [path, f] of Object.entries(m?.files ?? {})) if (f.pooled) referenced.add(`${SITE_POOL_PREFIX}${path}`);
  }
  const orphans = [...(await listKeys(s3, bucketName, SITE_POOL_PREFIX)).keys()].filter((k) => !referenced.has(k));
  await deleteKeys(s3, bucketName, orphans);
  if (orphans.length > 0) log(`deleted ${orphans.length} pool object(s) no retained release references`);

  if (doomed.length > 0) await writeHistory(s3, bucketName, history);
  return { pruned: doomed.map((r) => r.id), kept: [...keep], poolObjectsDeleted: orphans.length };
}
