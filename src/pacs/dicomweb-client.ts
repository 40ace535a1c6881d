/**
 * A small typed DICOMweb client over fetch: QIDO-RS to list a series' instances with their
 * position, WADO-RS to retrieve instances as Part 10 files. It knows HTTP and DICOM JSON, not
 * nodules: src/pacs/pacs-nodule.ts picks the slices. (The `dicomweb-client` package targets
 * browsers over XMLHttpRequest; this is the part of it a server needs.)
 *
 * Every request is bounded (timeoutMs covers connect, headers and body) and at most
 * `concurrency` requests are in flight per client. A PACS that cannot be reached, answers 5xx,
 * or does not answer in time is SERVICE_UNAVAILABLE; a 404 is reported to the caller as null,
 * which knows which UID it asked for.
 */
import type { SlicePosition } from '../domain/slice-order.ts';
import { BadInputError, UnavailableError } from '../errors.ts';

export type DicomwebAuth =
  | { kind: 'none' }
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'bearer'; token: string };

export interface DicomwebSettings {
  /** The DICOMweb root, e.g. http://pacs:8042/dicom-web (a trailing slash is ignored). */
  url: string;
  auth: DicomwebAuth;
  /** Per request: connect, headers and the whole body. */
  timeoutMs: number;
  /** Requests in flight at once, per client. */
  concurrency: number;
  /** Largest accepted WADO-RS response (one instance). */
  maxInstanceBytes: number;
  /** QIDO-RS page size (default 500; tests use a small one to exercise the paging). */
  qidoPageSize?: number;
}

/** One instance of a series as QIDO-RS lists it (the attributes this service asks for). */
export interface SeriesInstance extends SlicePosition {
  sopInstanceUid: string;
  sopClassUid: string | null;
  modality: string | null;
  /** PatientID, only to derive a pseudonymous key with a keyed hash; never stored or logged. */
  patientId: string | null;
}

export const TAGS = {
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  Modality: '00080060',
  PatientID: '00100020',
  StudyInstanceUID: '0020000D',
  InstanceNumber: '00200013',
  ImagePositionPatient: '00200032',
  ImageOrientationPatient: '00200037',
} as const;

type DicomJson = Record<string, { vr?: string; Value?: unknown[] }>;

/** Media type of a whole Part 10 instance in the stored transfer syntax (PS3.18 8.7.3.5.2: `*` = as stored). */
const WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const DICOM_JSON = 'application/dicom+json, application/json';
/** QIDO answers for one series: thousands of instances at most, a few hundred bytes each. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;
/** QIDO-RS page size: many PACS cap a result (dcm4chee, cloud DICOM stores), so a series is read in pages. */
const QIDO_PAGE = 500;
/** The longest series read: 20,000 instances; past it the request is refused, not silently cut. */
const QIDO_MAX_INSTANCES = 20_000;

interface Reply {
  status: number;
  contentType: string;
  body: Buffer;
}

/** A counting semaphore: the concurrency bound. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

function first(ds: DicomJson, tag: string): unknown {
  return ds[tag]?.Value?.[0];
}

function text(ds: DicomJson, tag: string): string | null {
  const v = first(ds, tag);
  return typeof v === 'string' ? v.trim() : typeof v === 'number' ? String(v) : null;
}

/** DS and IS values arrive as JSON numbers, or as strings from some servers. */
function numbers(ds: DicomJson, tag: string): number[] | null {
  const values = ds[tag]?.Value;
  if (!values?.length) return null;
  const out = values.map((v) => (typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN));
  return out.every(Number.isFinite) ? out : null;
}

export function parseSeriesInstance(ds: DicomJson): SeriesInstance | null {
  const sopInstanceUid = text(ds, TAGS.SOPInstanceUID);
  if (!sopInstanceUid) return null;
  const position = numbers(ds, TAGS.ImagePositionPatient);
  const instanceNumber = numbers(ds, TAGS.InstanceNumber)?.[0] ?? null;
  return {
    sopInstanceUid,
    sopClassUid: text(ds, TAGS.SOPClassUID),
    modality: text(ds, TAGS.Modality),
    instanceNumber,
    imagePositionPatient: position?.length === 3 ? [position[0]!, position[1]!, position[2]!] : null,
    imageOrientationPatient: numbers(ds, TAGS.ImageOrientationPatient),
    patientId: text(ds, TAGS.PatientID),
  };
}

/** The parts of a multipart/related body (RFC 2046): each part's bytes after its headers. */
export function multipartParts(body: Buffer, contentType: string): Buffer[] {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!m) throw new Error(`multipart response without a boundary (${contentType.slice(0, 100)})`);
  const delimiter = Buffer.from(`--${m[1] ?? m[2]}`, 'latin1');
  const parts: Buffer[] = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const afterDelimiter = at + delimiter.length;
    // "--" after the delimiter closes the body.
    if (body[afterDelimiter] === 0x2d && body[afterDelimiter + 1] === 0x2d) break;
    const headersEnd = body.indexOf('\r\n\r\n', afterDelimiter, 'latin1');
    if (headersEnd < 0) break;
    const next = body.indexOf(delimiter, headersEnd + 4);
    if (next < 0) break;
    // The CRLF before the next delimiter belongs to the delimiter.
    let end = next;
    if (body[end - 2] === 0x0d && body[end - 1] === 0x0a) end -= 2;
    parts.push(body.subarray(headersEnd + 4, end));
    at = next;
  }
  return parts;
}

export class DicomwebClient {
  private readonly root: string;
  private readonly limiter: Limiter;

  constructor(private readonly settings: DicomwebSettings) {
    this.root = settings.url.replace(/\/+$/, '');
    this.limiter = new Limiter(Math.max(1, settings.concurrency));
  }

  /** The PACS as logs and errors name it: its origin only (never credentials or paths). */
  get origin(): string {
    try {
      return new URL(this.root).origin;
    } catch {
      return 'the PACS';
    }
  }

  /**
   * QIDO-RS: every instance of the series with the attributes we order and check by, read in
   * pages (limit/offset) so that a PACS's result cap cannot cut the series and pick the wrong
   * neighbours. An unknown study or series gives an empty list (servers answer 200 [] or 204).
   */
  async searchSeriesInstances(studyInstanceUid: string, seriesInstanceUid: string): Promise<SeriesInstance[]> {
    const fields = [TAGS.SOPClassUID, TAGS.Modality, TAGS.PatientID, TAGS.InstanceNumber, TAGS.ImagePositionPatient, TAGS.ImageOrientationPatient];
    const query = fields.map((f) => `includefield=${f}`).join('&');
    const bySop = new Map<string, SeriesInstance>();
    const pageSize = this.settings.qidoPageSize ?? QIDO_PAGE;
    let offset = 0;
    for (;;) {
      if (offset >= QIDO_MAX_INSTANCES) throw new BadInputError(`the series has more than ${QIDO_MAX_INSTANCES} instances; the PACS path reads at most that many`);
      const url = `/studies/${enc(studyInstanceUid)}/series/${enc(seriesInstanceUid)}/instances?${query}&limit=${pageSize}&offset=${offset}`;
      const res = await this.request(url, DICOM_JSON, MAX_JSON_BYTES, 'QIDO-RS instances');
      if (res.status === 404 || res.status === 204) break;
      const parsed = this.json(res.body, 'QIDO-RS instances');
      if (!Array.isArray(parsed)) throw new UnavailableError(`${this.origin} answered QIDO-RS with something other than a DICOM JSON array`);
      const before = bySop.size;
      offset += parsed.length;
      for (const ds of parsed) {
        const instance = parseSeriesInstance(ds as DicomJson);
        if (instance) bySop.set(instance.sopInstanceUid, instance);
      }
      // A short page ends the series; so does a page with nothing new (a PACS that ignores offset).
      if (parsed.length < pageSize || bySop.size === before) break;
    }
    return [...bySop.values()];
  }

  /** QIDO-RS at study level: whether the PACS knows the study (to say which UID of a request is unknown). */
  async hasStudy(studyInstanceUid: string): Promise<boolean> {
    const res = await this.request(`/studies?StudyInstanceUID=${enc(studyInstanceUid)}&includefield=${TAGS.StudyInstanceUID}`, DICOM_JSON, MAX_JSON_BYTES, 'QIDO-RS studies');
    if (res.status === 404 || res.status === 204) return false;
    const parsed = this.json(res.body, 'QIDO-RS studies');
    return Array.isArray(parsed) && parsed.length > 0;
  }

  /** WADO-RS of one instance, as stored (its own transfer syntax); null when the PACS does not have it. */
  async retrieveInstance(studyInstanceUid: string, seriesInstanceUid: string, sopInstanceUid: string): Promise<Buffer | null> {
    const path = `/studies/${enc(studyInstanceUid)}/series/${enc(seriesInstanceUid)}/instances/${enc(sopInstanceUid)}`;
    const res = await this.request(path, WADO_ACCEPT, this.settings.maxInstanceBytes, 'WADO-RS instance');
    if (res.status === 404) return null;
    const type = res.contentType;
    const body = res.body;
    if (/^application\/dicom\b/i.test(type)) return body;
    if (!/^multipart\/related\b/i.test(type)) throw new UnavailableError(`${this.origin} answered WADO-RS with ${type.slice(0, 60) || 'no content type'}, not multipart/related DICOM`);
    const parts = multipartParts(body, type);
    if (parts.length !== 1) throw new UnavailableError(`${this.origin} answered WADO-RS for one instance with ${parts.length} parts`);
    return parts[0]!;
  }

  private authorization(): string | undefined {
    const a = this.settings.auth;
    if (a.kind === 'basic') return `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`;
    if (a.kind === 'bearer') return `Bearer ${a.token}`;
    return undefined;
  }

  /**
   * One bounded request: the whole exchange, body included, holds a slot of the limiter and
   * runs under the deadline. 404 and 204 come back to the caller; other failures throw.
   */
  private async request(path: string, accept: string, maxBytes: number, what: string): Promise<Reply> {
    return this.limiter.run(async () => {
      const signal = AbortSignal.timeout(this.settings.timeoutMs);
      const headers: Record<string, string> = { accept };
      const auth = this.authorization();
      if (auth) headers.authorization = auth;
      try {
        const res = await fetch(`${this.root}${path}`, { headers, signal, redirect: 'error' });
        if (res.status === 401 || res.status === 403) {
          await res.body?.cancel().catch(() => {});
          throw new UnavailableError(`${this.origin} refused our credentials (HTTP ${res.status}); check FCDN_DICOMWEB_USER/FCDN_DICOMWEB_PASSWORD or FCDN_DICOMWEB_TOKEN`);
        }
        if (res.status >= 400 && res.status !== 404) {
          await res.body?.cancel().catch(() => {});
          throw new UnavailableError(`${this.origin} answered ${what} with HTTP ${res.status}; retry later`);
        }
        const chunks: Uint8Array[] = [];
        let total = 0;
        for await (const chunk of res.body ?? []) {
          total += chunk.length;
          if (total > maxBytes) {
            await res.body?.cancel().catch(() => {});
            throw new UnavailableError(`${this.origin} sent more than ${maxBytes} bytes for ${what}`);
          }
          chunks.push(chunk);
        }
        return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: Buffer.concat(chunks) };
      } catch (err) {
        if (err instanceof UnavailableError) throw err;
        throw this.unavailable(err);
      }
    });
  }

  private json(body: Buffer, what: string): unknown {
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      throw new UnavailableError(`${this.origin} answered ${what} with invalid JSON`);
    }
  }

  private unavailable(err: unknown): UnavailableError {
    const e = err as { name?: string; cause?: { code?: string } };
    const why = e?.name === 'TimeoutError' || e?.name === 'AbortError'
      ? `did not answer within ${this.settings.timeoutMs} ms`
      : `could not be reached (${e?.cause?.code ?? e?.name ?? 'error'})`;
    return new UnavailableError(`the PACS at ${this.origin} ${why}; retry later`, { cause: err });
  }
}

function enc(uid: string): string {
  return encodeURIComponent(uid);
}
