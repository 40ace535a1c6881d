/**
 * The order of a series' slices along the body: ImagePositionPatient projected on the slice
 * normal (row x column direction of ImageOrientationPatient; z when the orientation is missing),
 * then InstanceNumber, then a tie key (a UID or a file name) so that the order is total.
 * Slices without a position follow those with one. One rule for every source of a series: the
 * DICOM folder import (src/cli/import-sources.ts) and the PACS (src/pacs/pacs-nodule.ts).
 */
export interface SlicePosition {
  instanceNumber: number | null;
  /** (x, y, z) in mm. */
  imagePositionPatient: [number, number, number] | null;
  /** Row then column direction cosines (6 numbers). */
  imageOrientationPatient: number[] | null;
}

/** Unit normal of the slice plane, when the orientation is usable. */
function normalOf(orientation: number[] | null): [number, number, number] | null {
  if (orientation?.length !== 6 || !orientation.every(Number.isFinite)) return null;
  const [rx, ry, rz, cx, cy, cz] = orientation as [number, number, number, number, number, number];
  const n: [number, number, number] = [ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx];
  const len = Math.hypot(...n);
  return len > 1e-6 ? [n[0] / len, n[1] / len, n[2] / len] : null;
}

export function orderByPosition<T extends SlicePosition>(slices: readonly T[], tieKey: (slice: T) => string): T[] {
  const normal = normalOf(slices.find((s) => s.imageOrientationPatient)?.imageOrientationPatient ?? null) ?? [0, 0, 1];
  const along = (s: T) => (s.imagePositionPatient ? s.imagePositionPatient[0] * normal[0] + s.imagePositionPatient[1] * normal[1] + s.imagePositionPatient[2] * normal[2] : null);
  const keyed = slices.map((s) => ({ s, pos: along(s), tie: tieKey(s) }));
  keyed.sort((a, b) => {
    if (a.pos !== null && b.pos !== null && Math.abs(a.pos - b.pos) > 1e-4) return a.pos - b.pos;
    if ((a.pos === null) !== (b.pos === null)) return a.pos === null ? 1 : -1;
    const an = a.s.instanceNumber ?? Number.POSITIVE_INFINITY;
    const bn = b.s.instanceNumber ?? Number.POSITIVE_INFINITY;
    if (an !== bn) return an < bn ? -1 : 1;
    return a.tie < b.tie ? -1 : a.tie > b.tie ? 1 : 0;
  });
  return keyed.map((k) => k.s);
}
