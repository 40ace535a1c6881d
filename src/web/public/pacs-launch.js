// The launch URL any viewer can open (docs/pacs.md):
//   /?studyInstanceUid=…&seriesInstanceUid=…&sopInstanceUid=…&x=…&y=…[&neighbours=0..2]
// x, y: the nodule centre in the slice's pixel coordinates (column, row).

const UID = /^[0-9]+(\.[0-9]+)*$/;
const PARAMS = ['studyInstanceUid', 'seriesInstanceUid', 'sopInstanceUid', 'x', 'y'];

/**
 * The PACS nodule named by the page's URL: null when the URL names none; { error } when it names
 * one incompletely or wrongly (the page says what is wrong instead of searching).
 */
export function launchNodule(search) {
  const params = new URLSearchParams(search);
  const present = PARAMS.filter((p) => params.get(p));
  if (present.length === 0) return null;
  const missing = PARAMS.filter((p) => !params.get(p));
  if (missing.length) return { error: `The link names a PACS nodule but lacks ${missing.join(', ')}.` };
  const nodule = {
    studyInstanceUid: params.get('studyInstanceUid').trim(),
    seriesInstanceUid: params.get('seriesInstanceUid').trim(),
    sopInstanceUid: params.get('sopInstanceUid').trim(),
    centerX: Number(params.get('x')),
    centerY: Number(params.get('y')),
  };
  for (const name of ['studyInstanceUid', 'seriesInstanceUid', 'sopInstanceUid']) {
    if (!UID.test(nodule[name]) || nodule[name].length > 64) return { error: `The link's ${name} is not a DICOM UID.` };
  }
  if (!Number.isFinite(nodule.centerX) || !Number.isFinite(nodule.centerY)) return { error: 'The link\'s x and y must be numbers (pixel column and row).' };
  if (params.get('neighbours')) {
    const n = Number(params.get('neighbours'));
    if (!Number.isInteger(n) || n < 0 || n > 2) return { error: 'The link\'s neighbours must be 0, 1 or 2.' };
    nodule.neighbours = n;
  }
  return { nodule };
}

/** The launch URL of a nodule (the same form; for the page's own "link to this search"). */
export function launchUrl(base, nodule) {
  const url = new URL(base);
  url.search = '';
  url.searchParams.set('studyInstanceUid', nodule.studyInstanceUid);
  url.searchParams.set('seriesInstanceUid', nodule.seriesInstanceUid);
  url.searchParams.set('sopInstanceUid', nodule.sopInstanceUid);
  url.searchParams.set('x', String(nodule.centerX));
  url.searchParams.set('y', String(nodule.centerY));
  if (nodule.neighbours != null) url.searchParams.set('neighbours', String(nodule.neighbours));
  return url.toString();
}
