// The results page: pick a query (stored case or files), run similarCases, show query and hits side by side.
import { apiKey, graphql } from './graphql-client.js';
import { launchNodule } from './pacs-launch.js';
import { inspectFiles, readSlices } from './slice-files.js';

// lung / mediastinal: the 8-bit display renditions (Slice.displayUrl); imageUrl: the stored original.
const CASE_FIELDS = `fragment CaseFields on NoduleCase {
  id externalId malignancy malignancyClass diameterMm findings viewerUrl
  reports { text impression }
  slices { offset imageUrl lung: displayUrl(window: LUNG) mediastinal: displayUrl(window: MEDIASTINAL) }
}`;

const SEARCH = `query Search($input: SimilarCasesInput!) {
  similarCases(input: $input) {
    model { name bits }
    tookMs
    tiedAtCutoff
    lungPreviews: queryPreviews(window: LUNG) { offset inSliceWindow imageUrl }
    mediastinalPreviews: queryPreviews(window: MEDIASTINAL) { offset imageUrl }
    hits { rank jointDistance shallowDistance middleDistance deepDistance tieGroupSize case { ...CaseFields } }
  }
}
${CASE_FIELDS}`;

const CASE_LIST = `query CaseList { cases(first: 100) { totalCount edges { node { id externalId malignancyClass diameterMm } } } }`;
const CASE_BY_ID = `query CaseById($id: ID!) { case(id: $id) { ...CaseFields } } ${CASE_FIELDS}`;
const CASE_BY_EXTERNAL_ID = `query CaseByExternalId($externalId: String!) { caseByExternalId(externalId: $externalId) { ...CaseFields } } ${CASE_FIELDS}`;

const CLASS_NAMES = { BENIGN: 'Benign', INDETERMINATE: 'Indeterminate', MALIGNANT: 'Malignant' };
const EXCERPT_CHARS = 180;
/** Stored findings shown per hit, in this order (the importer's label columns, docs/import.md); others follow. */
const FINDING_LABELS = {
  texture: 'Texture',
  texture_class: 'Texture class',
  subtlety: 'Subtlety',
  internal_structure: 'Internal structure',
  calcification: 'Calcification',
  sphericity: 'Sphericity',
  margin: 'Margin',
  lobulation: 'Lobulation',
  spiculation: 'Spiculation',
  size_class: 'Size class',
};
/** Bookkeeping, not findings. */
const HIDDEN_FINDINGS = new Set(['import', 'eq_diam_vox', 'rating_source']);

const $ = (id) => document.getElementById(id);
let chosenFiles = [];

/** Builds an element; children are nodes or text (never parsed as HTML). Keys with a dash and role are attributes. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.includes('-') || key === 'role') node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children.flat()) if (child != null) node.append(child);
  return node;
}

function setStatus(text) {
  $('status').textContent = text;
}

function showError(message) {
  const box = $('error');
  box.replaceChildren(el('strong', {}, 'Error: '), message);
  box.hidden = false;
  setStatus('');
}

function clearError() {
  $('error').hidden = true;
  $('error').replaceChildren();
}

const caseLabel = (c) => (c.externalId ? `case ${c.externalId}` : `case #${c.id}`);
const diagnosis = (c) => CLASS_NAMES[c.malignancyClass] ?? 'No diagnosis';
const size = (c) => (c.diameterMm == null ? 'size unknown' : `${formatNumber(c.diameterMm)} mm`);
const formatNumber = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(1));
const formatDistance = (x) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const displayWindow = () => $('display-window').value;

function excerpt(text) {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= EXCERPT_CHARS ? flat : `${flat.slice(0, EXCERPT_CHARS).replace(/\s+\S*$/, '')}…`;
}

// ---------------------------------------------------------------- key and case list

async function loadCases() {
  const select = $('case-select');
  try {
    setStatus('Loading the stored cases…');
    const { cases } = await graphql(CASE_LIST);
    const options = cases.edges.map(({ node }) =>
      el('option', { value: node.id }, `${caseLabel(node)} — ${diagnosis(node)}, ${size(node)} (id ${node.id})`),
    );
    if (options.length === 0) options.push(el('option', { value: '' }, 'No cases stored yet'));
    select.replaceChildren(...options);
    for (const option of options) option.title = option.textContent;
    clearError();
    const shown = cases.edges.length;
    if (cases.totalCount === 0) {
      setStatus('No cases stored yet. Import a folder of cases with npm run import -- <folder> (docs/import.md), or add them with the ingestCase mutation; or search with image files.');
    } else {
      setStatus(shown < cases.totalCount ? `Listed the newest ${shown} of ${cases.totalCount} cases; type an id for the others.` : `${cases.totalCount} stored cases listed.`);
    }
  } catch (err) {
    select.replaceChildren(el('option', { value: '' }, 'Could not list cases'));
    showError(err.message);
  }
}

/** A viewer's launch link waiting for a key (pacs-launch.js); searched once there is one. */
let pendingLaunch = false;

async function onKeySubmit(event) {
  event.preventDefault();
  const input = $('api-key');
  const key = input.value.trim();
  if (!key) return showError('Enter an API key.');
  apiKey.set(key);
  input.value = '';
  input.placeholder = 'saved for this tab';
  await loadCases();
  if (pendingLaunch) {
    pendingLaunch = false;
    $('search-form').requestSubmit();
  }
}

function onForgetKey() {
  apiKey.clear();
  $('api-key').placeholder = '';
  $('case-select').replaceChildren(el('option', { value: '' }, 'Enter an API key to list cases'));
  setStatus('The key was removed from this tab.');
}

// ---------------------------------------------------------------- choosing the query

function source() {
  return document.querySelector('input[name="source"]:checked').value;
}

function showSource() {
  $('case-source').hidden = source() !== 'case';
  $('file-source').hidden = source() !== 'files';
  $('pacs-source').hidden = source() !== 'pacs';
}

/** The PACS nodule of the form (PacsNoduleInput); the service checks the UIDs and the point. */
function pacsNodule() {
  const text = (id, label) => {
    const value = $(id).value.trim();
    if (!value) throw new Error(`${label} is empty.`);
    return value;
  };
  const number = (id, label) => {
    const value = Number($(id).value);
    if ($(id).value.trim() === '' || !Number.isFinite(value)) throw new Error(`${label} must be a number.`);
    return value;
  };
  return {
    studyInstanceUid: text('pacs-study', 'The Study Instance UID'),
    seriesInstanceUid: text('pacs-series', 'The Series Instance UID'),
    sopInstanceUid: text('pacs-sop', 'The SOP Instance UID'),
    centerX: number('pacs-x', 'The column (x)'),
    centerY: number('pacs-y', 'The row (y)'),
    neighbours: number('pacs-neighbours', 'Neighbours each side'),
  };
}

/** A launch link's nodule put into the form (and the PACS source chosen). */
function fillPacsForm(nodule) {
  $('source-pacs').checked = true;
  showSource();
  $('pacs-study').value = nodule.studyInstanceUid;
  $('pacs-series').value = nodule.seriesInstanceUid;
  $('pacs-sop').value = nodule.sopInstanceUid;
  $('pacs-x').value = String(nodule.centerX);
  $('pacs-y').value = String(nodule.centerY);
  if (nodule.neighbours != null) $('pacs-neighbours').value = String(nodule.neighbours);
}

/** A switch of the query source starts afresh: an error about the other source no longer applies. */
function onSourceChange() {
  clearError();
  showSource();
}

async function useFiles(files) {
  chosenFiles = [...files];
  $('file-list').replaceChildren();
  if (!$('source-files').checked) {
    $('source-files').checked = true;
    onSourceChange();
  }
  // The kind comes from the bytes (PNG signature, "DICM" at 128), never from the name.
  const inspected = await inspectFiles(chosenFiles);
  $('file-list').replaceChildren(
    ...inspected.map(({ file, offset, kind, what }) =>
      el('li', { className: kind ? '' : 'refused' }, kind ? `${file.name} — ${kind}, offset ${offset}` : `${file.name} — not accepted: ${what}`),
    ),
  );
  const refused = inspected.filter((f) => !f.kind).length;
  setStatus(`${plural(chosenFiles.length, 'file')} chosen${refused ? `; ${refused} of them cannot be sent (neither PNG nor DICOM)` : ''}.`);
}

function wireDropZone() {
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('dragging');
    if (e.dataTransfer?.files.length) useFiles(e.dataTransfer.files);
  });
  $('files').addEventListener('change', (e) => useFiles(e.target.files));
}

async function resolveCase(ref, selected) {
  if (!ref) {
    if (!selected) throw new Error('Choose a stored case, or type a case id or external id.');
    const { case: found } = await graphql(CASE_BY_ID, { id: selected });
    if (!found) throw new Error(`Case ${selected} no longer exists; reload the list.`);
    return found;
  }
  if (/^\d{1,10}$/.test(ref)) {
    const { case: found } = await graphql(CASE_BY_ID, { id: ref });
    if (found) return found;
  }
  const { caseByExternalId: found } = await graphql(CASE_BY_EXTERNAL_ID, { externalId: ref });
  if (!found) throw new Error(`No case has the id or external id "${ref}".`);
  return found;
}

/** The class and size filters (CaseFilter); null when none is set. */
function caseFilter() {
  const classes = [...document.querySelectorAll('input[name="only-class"]:checked')].map((c) => c.value);
  const bound = (id, label) => ($(id).value.trim() === '' ? null : numberField(id, label));
  const filter = { malignancyClass: classes.length ? classes : null, minDiameterMm: bound('min-mm', 'The smallest size'), maxDiameterMm: bound('max-mm', 'The largest size') };
  return Object.values(filter).some((v) => v != null) ? filter : null;
}

/** The filter in words, for the summary above the hits ("only malignant, 10–20 mm"). */
function describeFilter(filter) {
  if (!filter) return '';
  const parts = [];
  if (filter.malignancyClass) parts.push(`only ${filter.malignancyClass.map((c) => c.toLowerCase()).join(' or ')}`);
  if (filter.minDiameterMm != null && filter.maxDiameterMm != null) parts.push(`${formatNumber(filter.minDiameterMm)}–${formatNumber(filter.maxDiameterMm)} mm`);
  else if (filter.minDiameterMm != null) parts.push(`at least ${formatNumber(filter.minDiameterMm)} mm`);
  else if (filter.maxDiameterMm != null) parts.push(`at most ${formatNumber(filter.maxDiameterMm)} mm`);
  return ` (${parts.join(', ')})`;
}

function numberField(id, label) {
  const input = $(id);
  const value = Number(input.value);
  if (input.value.trim() === '' || !Number.isFinite(value)) throw new Error(`${label} must be a number.`);
  return value;
}

// ---------------------------------------------------------------- rendering

/** A slice image in the chosen display window; the other window's URL rides along for the switch. */
function sliceFigure(images, alt, caption, original) {
  const img = el('img', { src: images[displayWindow()] ?? images.lung, alt, width: 96, height: 96, decoding: 'async', className: 'windowed' });
  img.dataset.lung = images.lung;
  img.dataset.mediastinal = images.mediastinal ?? images.lung;
  const link = original ? el('a', { href: original, download: '', title: 'Download the stored PNG as it is (16-bit HU + 32768, or 8-bit)' }, 'original') : null;
  return el('figure', { className: 'slice' }, img, el('figcaption', {}, caption, link ? [' · ', link] : null));
}

function onWindowChange() {
  const w = displayWindow();
  for (const img of document.querySelectorAll('img.windowed')) img.src = img.dataset[w];
}

const storedImages = (s) => ({ lung: s.lung, mediastinal: s.mediastinal });

function renderQueryCase(c) {
  const caption = $('query-caption');
  caption.textContent = `${caseLabel(c)}: ${diagnosis(c)}, ${size(c)}.`;
  caption.title = caption.textContent;
  const slices = [...c.slices].sort((a, b) => a.offset - b.offset);
  $('query-slices').replaceChildren(...slices.map((s) => sliceFigure(storedImages(s), `Query ${caseLabel(c)}, slice at offset ${s.offset}`, `offset ${s.offset}`, s.imageUrl)));
}

/** An image query after the search: the service's previews, the patches the model was given (DICOM too). */
function renderQueryFiles(slices, result) {
  const kinds = [...new Set(slices.map((s) => s.format))].join(' and ');
  $('query-caption').textContent = `${plural(slices.length, 'uploaded slice')} (${kinds}), shown as the model sees them.`;
  $('query-caption').title = '';
  const previews = new Map((result.lungPreviews ?? []).map((p) => [p.offset, { lung: p.imageUrl, inSliceWindow: p.inSliceWindow }]));
  for (const p of result.mediastinalPreviews ?? []) if (previews.has(p.offset)) previews.get(p.offset).mediastinal = p.imageUrl;
  $('query-slices').replaceChildren(
    ...slices.map((s) => {
      const p = previews.get(s.offset);
      const caption = `${s.name}, offset ${s.offset}${p && !p.inSliceWindow ? ' (outside the slice window: not compared)' : ''}`;
      return sliceFigure(p, `Uploaded slice ${s.name} (${s.format}) at offset ${s.offset}`, caption);
    }),
  );
}

/** A PACS query after the search: the fetched slices as the model saw them (the service's previews). */
function renderQueryPacs(nodule, result) {
  const previews = result.lungPreviews ?? [];
  const mediastinal = new Map((result.mediastinalPreviews ?? []).map((p) => [p.offset, p.imageUrl]));
  $('query-caption').textContent = `PACS nodule on slice ${nodule.sopInstanceUid} at (${nodule.centerX}, ${nodule.centerY}): ${plural(previews.length, 'slice')} fetched, shown as the model sees them.`;
  $('query-caption').title = $('query-caption').textContent;
  $('query-slices').replaceChildren(
    ...previews.map((p) => {
      const caption = `offset ${p.offset}${p.inSliceWindow ? '' : ' (outside the slice window: not compared)'}`;
      return sliceFigure({ lung: p.imageUrl, mediastinal: mediastinal.get(p.offset) }, `PACS slice at offset ${p.offset}`, caption);
    }),
  );
}

/** Joint, then DL/DM/DD each as a number and a bar on the code length's scale (0 = the same code). */
function distanceList(hit, bits) {
  const term = (name, title) => el('dt', {}, el('abbr', { title }, name));
  const layer = (name, title, value) => {
    const fill = el('span', { className: 'fill' });
    fill.style.setProperty('width', `${Math.min(100, (100 * value) / bits)}%`);
    return [term(name, title), el('dd', {}, el('span', { className: 'value' }, formatDistance(value)), el('span', { className: 'bar', 'aria-hidden': 'true', title: `${value} of ${bits} bits` }, fill))];
  };
  return el(
    'dl',
    { className: 'distances', 'aria-describedby': 'distance-scale' },
    term('Joint', 'weighted sum wS·DL + wM·DM + wD·DD'),
    el('dd', { className: 'joint' }, formatDistance(hit.jointDistance)),
    layer('DL', 'shallow distance: min Hamming distance of layer-4 codes over slice pairs', hit.shallowDistance),
    layer('DM', 'middle distance: Hamming distance of the layer-17 codes of the centre slices', hit.middleDistance),
    layer('DD', 'deep distance: min Hamming distance of layer-25 codes over slice pairs', hit.deepDistance),
  );
}

const formatFinding = (v) => (typeof v === 'number' ? formatNumber(v) : String(v));

/** The case's stored findings (ratings, texture...), known labels first; nested or bookkeeping values left out. */
function findingItems(findings) {
  if (!findings || typeof findings !== 'object') return [];
  const keys = Object.keys(findings).filter((k) => !HIDDEN_FINDINGS.has(k) && ['string', 'number', 'boolean'].includes(typeof findings[k]));
  const known = Object.keys(FINDING_LABELS).filter((k) => keys.includes(k));
  const rest = keys.filter((k) => !(k in FINDING_LABELS)).sort();
  return [...known, ...rest].flatMap((k) => [el('dt', {}, FINDING_LABELS[k] ?? k.replace(/_/g, ' ')), el('dd', {}, formatFinding(findings[k]))]);
}

function renderHit(hit, bits) {
  const c = hit.case;
  const headingId = `hit-${hit.rank}-heading`;
  const report = c.reports[0];
  const slices = [...c.slices].sort((a, b) => a.offset - b.offset);
  const heading = `${hit.rank}. ${caseLabel(c)} — ${diagnosis(c)}, ${size(c)}`;
  return el(
    'li',
    { className: 'hit' },
    el(
      'article',
      { 'aria-labelledby': headingId },
      el('h3', { id: headingId, title: heading }, heading),
      hitSlices(hit, slices),
      c.viewerUrl ? el('p', { className: 'viewer' }, el('a', { className: 'viewer-link', href: c.viewerUrl, target: '_blank', rel: 'noopener' }, `Open ${caseLabel(c)} in the viewer`)) : null,
      distanceList(hit, bits),
      el(
        'dl',
        { className: 'facts' },
        el('dt', {}, 'Diagnosis'),
        el('dd', {}, c.malignancy == null ? diagnosis(c) : `${diagnosis(c)} (malignancy ${c.malignancy} of 5)`),
        el('dt', {}, 'Size'),
        el('dd', {}, size(c)),
        findingItems(c.findings),
      ),
      report
        ? el('blockquote', { className: 'report' }, el('p', {}, excerpt(report.text)), report.impression ? el('p', { className: 'impression' }, `Impression: ${report.impression}`) : null)
        : el('p', { className: 'report none' }, 'No report.'),
    ),
  );
}

/** Up to five slices around the centre in view; a case imported with dozens keeps the rest one click away. */
const SLICES_IN_VIEW = 2;
function hitSlices(hit, slices) {
  const figure = (s) => sliceFigure(storedImages(s), `Rank ${hit.rank}, ${caseLabel(hit.case)}, slice at offset ${s.offset}`, `offset ${s.offset}`, s.imageUrl);
  const near = slices.filter((s) => Math.abs(s.offset) <= SLICES_IN_VIEW);
  if (near.length === slices.length) return el('div', { className: 'slices' }, slices.map(figure));
  const rest = slices.filter((s) => Math.abs(s.offset) > SLICES_IN_VIEW).map((s) => {
    const f = figure(s);
    f.querySelector('img').loading = 'lazy';
    return f;
  });
  return [
    el('div', { className: 'slices' }, near.map(figure)),
    el('details', { className: 'more-slices' }, el('summary', {}, `${plural(rest.length, 'more slice')} (offsets ${slices[0].offset} to ${slices[slices.length - 1].offset})`), el('div', { className: 'slices' }, rest)),
  ];
}

/** Hits with the same Joint distance as one group: the server's tieGroupSize says how many there are in all. */
function renderTieGroup(members, total, bits) {
  const d = formatDistance(members[0].jointDistance);
  const others = total - members.length;
  const noteId = `tie-${members[0].rank}`;
  const text =
    others > 0
      ? `${members.length === 1 ? 'This case is' : `These ${members.length} cases are`} tied at Joint ${d} with ${plural(others, 'other case')} not shown; order among them is arbitrary.`
      : `${members.length} cases tied at Joint ${d}; order among them is arbitrary.`;
  return el(
    'li',
    { className: 'tie-group' },
    el('section', { 'aria-labelledby': noteId }, el('p', { className: 'tie-note', id: noteId }, el('strong', {}, 'Tie: '), text), el('ol', { className: 'hits', start: members[0].rank }, members.map((h) => renderHit(h, bits)))),
  );
}

function groupsOf(hits) {
  const groups = [];
  for (const hit of hits) {
    const last = groups[groups.length - 1];
    if (last && last[0].jointDistance === hit.jointDistance) last.push(hit);
    else groups.push([hit]);
  }
  return groups;
}

const CLASS_ORDER = [
  ['MALIGNANT', 'malignant'],
  ['BENIGN', 'benign'],
  ['INDETERMINATE', 'indeterminate'],
  [null, 'without diagnosis'],
];

/** Above the hits: the class mix and size spread of the top k. A summary of what was found, not a verdict. */
function renderDecisionAid(result, filter) {
  const box = $('decision-aid');
  const hits = result.hits;
  if (hits.length === 0) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const n = hits.length;
  const counts = CLASS_ORDER.map(([cls, name]) => ({ cls, name, count: hits.filter((h) => (h.case.malignancyClass ?? null) === cls).length })).filter((c) => c.count > 0);
  const mix = counts.map((c, i) => (i === 0 ? `${c.count} of ${n} ${c.name}` : `${c.count} ${c.name}`)).join(', ');
  const sizes = hits.map((h) => h.case.diameterMm).filter((x) => x != null).sort((a, b) => a - b);
  let spread = 'sizes unknown';
  if (sizes.length) {
    const mid = sizes.length / 2;
    const median = sizes.length % 2 ? sizes[Math.floor(mid)] : (sizes[mid - 1] + sizes[mid]) / 2;
    spread = `${formatNumber(sizes[0])}–${formatNumber(sizes[sizes.length - 1])} mm (median ${formatNumber(median)} mm)${sizes.length < n ? `; size unknown for ${n - sizes.length}` : ''}`;
  }
  const bar = el('div', { className: 'mix-bar', 'aria-hidden': 'true' });
  for (const c of counts) {
    const seg = el('span', { className: `seg ${(c.cls ?? 'unknown').toLowerCase()}`, title: `${c.count} ${c.name}` });
    seg.style.setProperty('flex-grow', String(c.count));
    bar.append(seg);
  }
  const cutoff = hits[n - 1];
  const spill = result.tiedAtCutoff - hits.filter((h) => h.jointDistance === cutoff.jointDistance).length;
  box.replaceChildren(
    el('p', { className: 'mix' }, el('strong', {}, `Top ${n}${describeFilter(filter)}: `), `${mix}; ${spread}.`),
    bar,
    el(
      'p',
      { className: 'hint' },
      'What the most similar stored cases were found to be: a summary of the evidence, not a diagnosis of the query.',
      spill > 0 ? ` The cut at ${n} falls inside a tie of ${result.tiedAtCutoff} cases at Joint ${formatDistance(cutoff.jointDistance)}; ${plural(spill, 'of them is', 'of them are')} not counted here, and which were is arbitrary.` : null,
    ),
  );
  box.hidden = false;
}

function renderHits(result, filter) {
  const n = result.hits.length;
  const bits = result.model.bits;
  $('results-summary').replaceChildren(
    `${plural(n, 'case')}, ranked by Joint distance (model ${result.model.name}, ${Math.round(result.tookMs)} ms). `,
    el('span', { id: 'distance-scale' }, `Bars: Hamming distance of each layer's ${bits}-bit codes, 0 (the same code) to ${bits}; unrelated codes differ in about ${bits / 2}.`),
  );
  renderDecisionAid(result, filter);
  $('hits').replaceChildren(...groupsOf(result.hits).map((g) => (g[0].tieGroupSize > 1 ? renderTieGroup(g, g[0].tieGroupSize, bits) : renderHit(g[0], bits))));
}

/** After a failed search nothing of an earlier one may stay on screen as if it answered this one. */
function clearResults(message) {
  $('query-caption').textContent = message;
  $('query-caption').title = '';
  $('query-slices').replaceChildren();
  $('results-summary').textContent = message;
  $('hits').replaceChildren();
  $('decision-aid').hidden = true;
  $('decision-aid').replaceChildren();
}

// ---------------------------------------------------------------- search

async function onSearch(event) {
  event.preventDefault();
  clearError();
  const button = $('search-button');
  button.disabled = true;
  $('hits-panel').setAttribute('aria-busy', 'true');
  let fileSlices = null;
  try {
    const input = {
      k: numberField('k', 'k'),
      weights: { shallow: numberField('w-shallow', 'The DL weight'), middle: numberField('w-middle', 'The DM weight'), deep: numberField('w-deep', 'The DD weight') },
    };
    const filter = caseFilter();
    if (filter) input.filter = filter;
    if (source() === 'case') {
      setStatus('Finding the query case…');
      const query = await resolveCase($('case-ref').value.trim(), $('case-select').value);
      input.caseId = query.id;
      input.excludeSamePatient = $('exclude-patient').checked;
      renderQueryCase(query);
    } else if (source() === 'pacs') {
      input.pacs = pacsNodule();
    } else {
      setStatus('Reading the files…');
      fileSlices = await readSlices(chosenFiles);
      input.images = fileSlices.map((s) => s.input);
    }
    setStatus(input.pacs ? 'Fetching the slices from the PACS and searching…' : 'Searching…');
    const { similarCases } = await graphql(SEARCH, { input });
    if (fileSlices) renderQueryFiles(fileSlices, similarCases);
    if (input.pacs) renderQueryPacs(input.pacs, similarCases);
    renderHits(similarCases, filter);
    setStatus(`Found ${similarCases.hits.length} similar cases in ${Math.round(similarCases.tookMs)} ms.`);
    $('results-heading').focus();
  } catch (err) {
    clearResults('No results: the search failed (see the error above).');
    showError(err.message);
  } finally {
    button.disabled = false;
    $('hits-panel').removeAttribute('aria-busy');
  }
}

function start() {
  $('key-form').addEventListener('submit', onKeySubmit);
  $('forget-key').addEventListener('click', onForgetKey);
  $('reload-cases').addEventListener('click', loadCases);
  $('search-form').addEventListener('submit', onSearch);
  for (const radio of document.querySelectorAll('input[name="source"]')) radio.addEventListener('change', onSourceChange);
  $('display-window').addEventListener('change', onWindowChange);
  wireDropZone();
  showSource();
  // Opened from a viewer with a nodule in the URL: search it at once (or once a key is given).
  const launch = launchNodule(location.search);
  if (launch?.nodule) fillPacsForm(launch.nodule);
  if (apiKey.get()) {
    $('api-key').placeholder = 'saved for this tab';
    // After the case list, which clears earlier errors.
    const listed = loadCases();
    if (launch?.nodule) listed.then(() => $('search-form').requestSubmit());
    if (launch?.error) listed.then(() => showError(launch.error));
  } else if (launch?.error) {
    showError(launch.error);
  } else if (launch?.nodule) {
    pendingLaunch = true;
    setStatus('Enter an API key to search for the PACS nodule named by the link.');
    $('api-key').focus();
  }
}

start();
