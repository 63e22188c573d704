// Reads a zip archive stored in S3 without downloading it: the central directory with one or two ranged
// GETs, then the entries by ranged GETs (consecutive small entries share one GET). Nothing touches /tmp.
import { Readable, Transform, TransformCallback } from 'stream';
import * as zlib from 'zlib';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated. */
  readonly method: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  /** Offset of the local file header. */
  readonly offset: number;
  /** Length of the extra field in the central directory (the local one is usually the same). */
  readonly extraLength: number;
}

export interface ZipDirectory {
  readonly entries: ZipEntry[];
  /** Offset of the central directory: every entry's data ends before it. */
  readonly centralDirectoryOffset: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

export class S3ZipSource {
  constructor(readonly s3: S3Client, readonly bucket: string, readonly key: string) {}

  /** Bytes [start, end) of the object. */
  async range(start: number, end: number): Promise<Buffer> {
    const res = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key, Range: `bytes=${start}-${end - 1}` }));
    const bytes = await res.Body!.transformToByteArray();
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength); // no copy
    if (buf.length !== end - start) {
      throw new Error(`short read of s3://${this.bucket}/${this.key} bytes ${start}-${end - 1}: got ${buf.length} bytes`);
    }
    return buf;
  }

  /** A stream of bytes [start, end) of the object. */
  async stream(start: number, end: number): Promise<Readable> {
    const res = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key, Range: `bytes=${start}-${end - 1}` }));
    return res.Body as Readable;
  }

  async size(): Promise<number> {
    const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key }));
    return head.ContentLength ?? 0;
  }
}

/** Reads the central directory of the zip. */
export async function readDirectory(src: S3ZipSource): Promise<ZipDirectory> {
  const total = await src.size();
  const tailStart = Math.max(0, total - (65535 + 22));
  const tail = await src.range(tailStart, total);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error(`s3://${src.bucket}/${src.key} is not a zip archive (no end of central directory)`);
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== ZIP64_LOCATOR_SIG) throw new Error('zip64 archive without a zip64 locator');
    const z64Offset = Number(tail.readBigUInt64LE(loc + 8));
    const rec = await src.range(z64Offset, z64Offset + 56);
    if (rec.readUInt32LE(0) !== ZIP64_EOCD_SIG) throw new Error('bad zip64 end of central directory record');
    count = Number(rec.readBigUInt64LE(32));
    cdSize = Number(rec.readBigUInt64LE(40));
    cdOffset = Number(rec.readBigUInt64LE(48));
  }
  const cd = cdOffset >= tailStart
    ? tail.subarray(cdOffset - tailStart, cdOffset - tailStart + cdSize)
    : await src.range(cdOffset, cdOffset + cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (cd.readUInt32LE(p) !== CENTRAL_SIG) throw new Error(`bad central directory entry ${i}`);
    const method = cd.readUInt16LE(p + 10);
    const crc32 = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let size = cd.readUInt32LE(p + 24);
    const n = cd.readUInt16LE(p + 28);
    const m = cd.readUInt16LE(p + 30);
    const k = cd.readUInt16LE(p + 32);
    let offset = cd.readUInt32LE(p + 42);
    const name = cd.toString('utf8', p + 46, p + 46 + n);
    // zip64 extended information: the 0xffffffff fields, in this order
    let e = p + 46 + n;
    const extraEnd = e + m;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) { size = Number(cd.readBigUInt64LE(q)); q += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = Number(cd.readBigUInt64LE(q)); q += 8; }
        if (offset === 0xffffffff) { offset = Number(cd.readBigUInt64LE(q)); q += 8; }
      }
      e += 4 + len;
    }
    if (method !== 0 && method !== 8) throw new Error(`zip entry ${name} uses compression method ${method} (only stored and deflated are supported)`);
    entries.push({ name, method, crc32, compressedSize, size, offset, extraLength: m });
    p += 46 + n + m + k;
  }
  return { entries, centralDirectoryOffset: cdOffset };
}

/** Where the entry's data starts inside `buf` (which starts at the entry's local header). */
export function localDataStart(buf: Buffer, at: number, entry: ZipEntry): number {
  if (buf.readUInt32LE(at) !== LOCAL_SIG) throw new Error(`bad local header for zip entry ${entry.name}`);
  return at + 30 + buf.readUInt16LE(at + 26) + buf.readUInt16LE(at + 28);
}

/** Upper bound of the bytes an entry occupies from its local header (name, extra and data), with slack. */
export function entrySpan(entry: ZipEntry): number {
  return 30 + Buffer.byteLength(entry.name) + entry.extraLength + 256 + entry.compressedSize;
}

let table: Int32Array | undefined;

/** CRC-32 (ISO-HDLC, as in zip and S3's CRC32 checksum) of `data`, continuing from `value`. */
export function crc32(data: Uint8Array, value = 0): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  if (native) return native(data, value) >>> 0;
  if (!table) {
    table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c;
    }
  }
  let c = ~value;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** The base64 big-endian form S3 uses for `x-amz-checksum-crc32`. */
export function crc32Base64(value: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b.toString('base64');
}

/** The error of an entry whose bytes disagree with the central directory. */
export class CorruptEntryError extends Error {
  constructor(readonly entry: string, detail: string) {
    super(`zip entry ${entry} is corrupt: ${detail}`);
    this.name = 'CorruptEntryError';
  }
}

/**
 * Passes an entry's inflated bytes through while checking them against the central directory's size and
 * CRC-32. The last chunk is held back until the whole entry has been checked, and more bytes than the size never
 * pass: a consumer that knows the length (PutObject with ContentLength) never receives a complete body unless
 * it is the right one. On a mismatch the stream fails with a CorruptEntryError (also kept in `failure`).
 */
export class EntryCheck extends Transform {
  /** The mismatch, once found. */
  public failure: CorruptEntryError | undefined;
  private crc = 0;
  private bytes = 0;
  private held: Buffer | undefined;

  constructor(private readonly entry: ZipEntry) {
    super();
  }

  _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (chunk.length === 0) return done();
    this.bytes += chunk.length;
    if (this.bytes > this.entry.size) return done(this.fail(`more than the ${this.entry.size} bytes its directory entry says`));
    this.crc = crc32(chunk, this.crc);
    if (this.held) this.push(this.held);
    this.held = chunk;
    done();
  }

  _flush(done: TransformCallback): void {
    if (this.bytes !== this.entry.size) return done(this.fail(`${this.bytes} bytes, its directory entry says ${this.entry.size}`));
    if (this.crc !== this.entry.crc32 >>> 0) {
      return done(this.fail(`CRC-32 ${hex(this.crc)}, its directory entry says ${hex(this.entry.crc32)}`));
    }
    if (this.held) this.push(this.held);
    done();
  }

  private fail(detail: string): CorruptEntryError {
    this.failure = new CorruptEntryError(this.entry.name, detail);
    return this.failure;
  }
}

/** Checks a whole (small) entry's bytes against the central directory; throws a CorruptEntryError. */
export function checkEntry(entry: ZipEntry, data: Buffer): void {
  if (data.length !== entry.size) throw new CorruptEntryError(entry.name, `${data.length} bytes, its directory entry says ${entry.size}`);
  const crc = crc32(data);
  if (crc !== entry.crc32 >>> 0) throw new CorruptEntryError(entry.name, `CRC-32 ${hex(crc)}, its directory entry says ${hex(entry.crc32)}`);
}

function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}
