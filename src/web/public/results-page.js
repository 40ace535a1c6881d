// The results page: pick a query (stored case or files), run similarCases, show query and hits side by side.
import { apiKey, graphql } from './graphql-client.js';
import { readSlices, withOffsets } from './slice-files.js';

const CASE_FIELDS = `fragment CaseFields on NoduleCase {
  id externalId malignancy malignancyClass diameterMm
  reports { text impression }
  slices { offset imageUrl }
}`;

const SEARCH = `query Search($input: SimilarCasesInput!) {
  similarCases(input: $input) {
    model { name }
    tookMs
    hits { rank jointDistance shallowDistance middleDistance deepDistance case { ...CaseFields } }
  }
}
${CASE_FIELDS}`;

const CASE_LIST = `query CaseList { cases(first: 100) { totalCount edges { node { id externalId malignancyClass diameterMm } } } }`;
const CASE_BY_ID = `query CaseById($id: ID!) { case(id: $id) { ...CaseFields } } ${CASE_FIELDS}`;
const CASE_BY_EXTERNAL_ID = `query CaseByExternalId($externalId: String!) { caseByExternalId(externalId: $externalId) { ...CaseFields } } ${CASE_FIELDS}`;

const CLASS_NAMES = { BENIGN: 'Benign', INDETERMINATE: 'Indeterminate', MALIGNANT: 'Malignant' };
const EXCERPT_CHARS = 180;

const $ = (id) => document.getElementById(id);
let chosenFiles = [];
let previewUrls = [];

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
    clearError();
    const shown = cases.edges.length;
    setStatus(shown < cases.totalCount ? `Listed the newest ${shown} of ${cases.totalCount} cases; type an id for the others.` : `${cases.totalCount} stored cases listed.`);
  } catch (err) {
    select.replaceChildren(el('option', { value: '' }, 'Could not list cases'));
    showError(err.message);
  }
}

function onKeySubmit(event) {
  event.preventDefault();
  const input = $('api-key');
  const key = input.value.trim();
  if (!key) return showError('Enter an API key.');
  apiKey.set(key);
  input.value = '';
  input.placeholder = 'saved for this tab';
  loadCases();
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
}

function useFiles(files) {
  chosenFiles = [...files];
  $('source-files').checked = true;
  showSource();
  $('file-list').replaceChildren(...withOffsets(chosenFiles).map(({ file, offset }) => el('li', {}, `${file.name} — offset ${offset}`)));
  setStatus(`${chosenFiles.length} file${chosenFiles.length === 1 ? '' : 's'} chosen.`);
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

function numberField(id, label) {
  const input = $(id);
  const value = Number(input.value);
  if (input.value.trim() === '' || !Number.isFinite(value)) throw new Error(`${label} must be a number.`);
  return value;
}

// ---------------------------------------------------------------- rendering

function sliceFigure(src, alt, caption) {
  return el('figure', { className: 'slice' }, el('img', { src, alt, width: 96, height: 96, decoding: 'async' }), el('figcaption', {}, caption));
}

function renderQueryCase(c) {
  $('query-caption').textContent = `${caseLabel(c)}: ${diagnosis(c)}, ${size(c)}.`;
  const slices = [...c.slices].sort((a, b) => a.offset - b.offset);
  $('query-slices').replaceChildren(...slices.map((s) => sliceFigure(s.imageUrl, `Query ${caseLabel(c)}, slice at offset ${s.offset}`, `offset ${s.offset}`)));
}

function renderQueryFiles(slices) {
  $('query-caption').textContent = `${slices.length} uploaded slice${slices.length === 1 ? '' : 's'}.`;
  $('query-slices').replaceChildren(
    ...slices.map((s) =>
      s.previewUrl
        ? sliceFigure(s.previewUrl, `Uploaded slice ${s.name} at offset ${s.offset}`, `${s.name}, offset ${s.offset}`)
        : el('figure', { className: 'slice no-preview' }, el('div', { className: 'placeholder', role: 'img', 'aria-label': `DICOM slice ${s.name}, no preview` }, 'DICOM'), el('figcaption', {}, `${s.name}, offset ${s.offset}`)),
    ),
  );
}

function distanceList(hit) {
  const item = (term, title, value) => [el('dt', {}, el('abbr', { title }, term)), el('dd', {}, formatDistance(value))];
  return el(
    'dl',
    { className: 'distances' },
    item('Joint', 'weighted sum wS·DL + wM·DM + wD·DD', hit.jointDistance),
    item('DL', 'shallow distance: min Hamming distance of layer-4 codes over slice pairs', hit.shallowDistance),
    item('DM', 'middle distance: Hamming distance of the layer-17 codes of the centre slices', hit.middleDistance),
    item('DD', 'deep distance: min Hamming distance of layer-25 codes over slice pairs', hit.deepDistance),
  );
}

function renderHit(hit) {
  const c = hit.case;
  const headingId = `hit-${hit.rank}-heading`;
  const report = c.reports[0];
  const slices = [...c.slices].sort((a, b) => a.offset - b.offset);
  return el(
    'li',
    { className: 'hit' },
    el(
      'article',
      { 'aria-labelledby': headingId },
      el('h3', { id: headingId }, `${hit.rank}. ${caseLabel(c)} — ${diagnosis(c)}, ${size(c)}`),
      el('div', { className: 'slices' }, slices.map((s) => sliceFigure(s.imageUrl, `Rank ${hit.rank}, ${caseLabel(c)}, slice at offset ${s.offset}`, `offset ${s.offset}`))),
      distanceList(hit),
      el(
        'dl',
        { className: 'facts' },
        el('dt', {}, 'Diagnosis'),
        el('dd', {}, c.malignancy == null ? diagnosis(c) : `${diagnosis(c)} (malignancy ${c.malignancy} of 5)`),
        el('dt', {}, 'Size'),
        el('dd', {}, size(c)),
      ),
      report
        ? el('blockquote', { className: 'report' }, el('p', {}, excerpt(report.text)), report.impression ? el('p', { className: 'impression' }, `Impression: ${report.impression}`) : null)
        : el('p', { className: 'report none' }, 'No report.'),
    ),
  );
}

function renderHits(result) {
  const n = result.hits.length;
  $('results-summary').textContent = `${n} case${n === 1 ? '' : 's'}, ranked by Joint distance (model ${result.model.name}, ${Math.round(result.tookMs)} ms).`;
  $('hits').replaceChildren(...result.hits.map(renderHit));
}

// ---------------------------------------------------------------- search

async function onSearch(event) {
  event.preventDefault();
  clearError();
  const button = $('search-button');
  button.disabled = true;
  $('hits-panel').setAttribute('aria-busy', 'true');
  try {
    const input = {
      k: numberField('k', 'k'),
      weights: { shallow: numberField('w-shallow', 'The DL weight'), middle: numberField('w-middle', 'The DM weight'), deep: numberField('w-deep', 'The DD weight') },
    };
    if (source() === 'case') {
      setStatus('Finding the query case…');
      const query = await resolveCase($('case-ref').value.trim(), $('case-select').value);
      input.caseId = query.id;
      input.excludeSamePatient = $('exclude-patient').checked;
      renderQueryCase(query);
    } else {
      setStatus('Reading the files…');
      const slices = await readSlices(chosenFiles);
      previewUrls.forEach((u) => URL.revokeObjectURL(u));
      previewUrls = slices.map((s) => s.previewUrl).filter(Boolean);
      input.images = slices.map((s) => s.input);
      renderQueryFiles(slices);
    }
    setStatus('Searching…');
    const { similarCases } = await graphql(SEARCH, { input });
    renderHits(similarCases);
    setStatus(`Found ${similarCases.hits.length} similar cases in ${Math.round(similarCases.tookMs)} ms.`);
    $('results-heading').focus();
  } catch (err) {
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
  for (const radio of document.querySelectorAll('input[name="source"]')) radio.addEventListener('change', showSource);
  wireDropZone();
  showSource();
  if (apiKey.get()) {
    $('api-key').placeholder = 'saved for this tab';
    loadCases();
  }
}

start();
