/**
 * A nodule named by a viewer (Study/Series/SOP Instance UIDs and a point) turned into the slices
 * of a search or an ingest: the series' instances are listed (QIDO-RS), put in order of position
 * along the series, the centre and `neighbours` on each side are picked and retrieved (WADO-RS).
 * The Part 10 bytes then go through exactly the path of uploaded DICOM (services/slice-input.ts).
 */
import { performance } from 'node:perf_hooks';
import { orderByPosition } from '../domain/slice-order.ts';
import { BadInputError, NotFoundError } from '../errors.ts';
import type { DicomwebClient, SeriesInstance } from './dicomweb-client.ts';

export interface PacsNoduleInput {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  centerX: number;
  centerY: number;
  neighbours?: number | null;
}

export const MAX_NEIGHBOURS = 2;
const UID = /^[0-9]+(\.[0-9]+)*$/;

/** One retrieved slice: a Part 10 file as the PACS stores it, at its offset from the centre. */
export interface PacsSlice {
  bytes: Buffer;
  offset: number;
  centerX: number;
  centerY: number;
}

export interface PacsNoduleSlices {
  /** In offset order. */
  images: PacsSlice[];
  /** Neighbours asked for on each side, and how many the series had there (fewer at its edges). */
  neighbours: { asked: number; before: number; after: number };
  /** PatientID of the centre instance, only for a keyed hash (never stored or logged); null when absent. */
  patientId: string | null;
  fetchMs: number;
}

export function checkPacsNodule(input: PacsNoduleInput, what = 'pacs'): void {
  for (const name of ['studyInstanceUid', 'seriesInstanceUid', 'sopInstanceUid'] as const) {
    const uid = input[name];
    if (typeof uid !== 'string' || uid.length === 0 || uid.length > 64 || !UID.test(uid)) {
      throw new BadInputError(`${what}.${name} "${String(uid).slice(0, 70)}" is not a DICOM UID (digits and dots, at most 64 characters)`);
    }
  }
  for (const name of ['centerX', 'centerY'] as const) {
    if (!Number.isFinite(input[name])) throw new BadInputError(`${what}.${name} must be a finite number (pixel coordinates of the nodule centre)`);
  }
  const n = input.neighbours ?? 1;
  if (!Number.isInteger(n) || n < 0 || n > MAX_NEIGHBOURS) throw new BadInputError(`${what}.neighbours must be an integer from 0 to ${MAX_NEIGHBOURS}, got ${n}`);
}

/** The series' instances in position order (src/domain/slice-order.ts), ties broken by UID. */
export function orderInstances(instances: readonly SeriesInstance[]): SeriesInstance[] {
  return orderByPosition(instances, (i) => i.sopInstanceUid);
}

/** Lists, orders, picks and retrieves the nodule's slices. Errors name the UID that is missing. */
export async function fetchPacsNodule(client: DicomwebClient, input: PacsNoduleInput, what = 'pacs'): Promise<PacsNoduleSlices> {
  checkPacsNodule(input, what);
  const started = performance.now();
  const { studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop } = input;
  const asked = input.neighbours ?? 1;
  const listed = await client.searchSeriesInstances(study, series);
  if (listed.length === 0) {
    if (!(await client.hasStudy(study))) throw new NotFoundError(`${what}.studyInstanceUid: study ${study} is not in the PACS`);
    throw new NotFoundError(`${what}.seriesInstanceUid: series ${series} is not in study ${study} in the PACS`);
  }
  const ordered = orderInstances(listed);
  const at = ordered.findIndex((i) => i.sopInstanceUid === sop);
  if (at < 0) throw new NotFoundError(`${what}.sopInstanceUid: instance ${sop} is not in series ${series} in the PACS`);
  const centre = ordered[at]!;
  // Cheap refusal before any retrieval; the decoder checks every fetched file again.
  if (centre.modality && centre.modality !== 'CT') throw new BadInputError(`${what}: series ${series} is ${centre.modality}, not CT`);
  const from = Math.max(0, at - asked);
  const to = Math.min(ordered.length - 1, at + asked);
  const picked = ordered.slice(from, to + 1).map((instance, j) => ({ instance, offset: from + j - at }));
  const files = await Promise.all(picked.map(({ instance }) => client.retrieveInstance(study, series, instance.sopInstanceUid)));
  const images: PacsSlice[] = picked.map(({ instance, offset }, j) => {
    const bytes = files[j];
    if (!bytes) throw new NotFoundError(`${what}.sopInstanceUid: instance ${instance.sopInstanceUid} of series ${series} could not be retrieved from the PACS (gone since it was listed)`);
    // The viewer's point is in the centre slice's pixels; a series shares one pixel grid, so the neighbours take the same point.
    return { bytes, offset, centerX: input.centerX, centerY: input.centerY };
  });
  return {
    images,
    neighbours: { asked, before: at - from, after: to - at },
    patientId: centre.patientId,
    fetchMs: performance.now() - started,
  };
}
