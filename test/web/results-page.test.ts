/**
 * A radiologist's story in a real browser (headless Chromium driven by playwright-core):
 * open the results page at /, paste a reader key, pick a stored case, search with the keyboard,
 * and see the top-k cases as the API ranks them, with loaded slice images, DL/DM/DD and Joint
 * distances, diagnosis, size and a report excerpt; then search with PNG files chosen from disk
 * and dropped on the page; a wrong key and a bad k show the service's own messages.
 *
 * Then (issue 12) at 1400 and 390 px: windowed display images (stored HU slices, a DICOM query's
 * preview), a tie group with the server's count, the class mix and findings, no panel over the
 * results and no sideways scrolling at 390 px, errors that replace stale results, kinds from bytes.
 *
 * Screenshots in docs/figures (results-page.png, results-page-wide.png, results-page-narrow.png,
 * results-page-dicom.png) are written from this run when UPDATE_SCREENSHOTS=1.
 * Chromium is not optional: a system one (/usr/bin/chromium, CHROMIUM_PATH) or else the one inside the
 * npm package @sparticuz/chromium (test/support/browser.ts); CI runs this test both ways.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { makePhantomDicom, makePhantomPng } from '../../fixtures/phantoms.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { findChromium } from '../support/browser.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { KEYS, startTestService, type TestService } from '../../fixtures/test-service.ts';

const SCREENSHOT = 'docs/figures/results-page.png';
/** Screenshots go to docs/figures when UPDATE_SCREENSHOTS=1 (always to a temporary folder, to be looked at). */
function keepScreenshot(file: string, name: string): void {
  if (process.env.UPDATE_SCREENSHOTS === '1') fs.copyFileSync(file, path.join('docs/figures', name));
}

// Six nodules of three patients, two each.
const CASES = [
  { externalId: 'res-0', patientKey: 'PSEUDO-R1', diameterPx: 8, texture: 'solid', malignancy: 1, mm: 6, report: 'Small smooth solid nodule in the left lower lobe, stable since the prior study.' },
  { externalId: 'res-1', patientKey: 'PSEUDO-R1', diameterPx: 26, texture: 'solid', lobulation: 0.3, malignancy: 5, mm: 21, report: 'Spiculated mass of the right upper lobe with pleural retraction; biopsy recommended.' },
  { externalId: 'res-2', patientKey: 'PSEUDO-R2', diameterPx: 14, texture: 'ground-glass', malignancy: 3, mm: 11, report: 'Pure ground-glass nodule of the right middle lobe; follow-up CT in 6 months.' },
  { externalId: 'res-3', patientKey: 'PSEUDO-R2', diameterPx: 22, texture: 'part-solid', lobulation: 0.2, malignancy: 4, mm: 17, report: 'Part-solid nodule with a growing solid component, suspicious for adenocarcinoma.' },
  { externalId: 'res-4', patientKey: 'PSEUDO-R3', diameterPx: 10, texture: 'solid', malignancy: 2, mm: 8, report: 'Well-circumscribed solid nodule, likely a granuloma.' },
  { externalId: 'res-5', patientKey: 'PSEUDO-R3', diameterPx: 24, texture: 'solid', lobulation: 0.35, malignancy: 5, mm: 23, report: 'Lobulated solid mass of the left upper lobe with an enlarged hilar node.' },
] as const;

const SEARCH = `query ($input: SimilarCasesInput!) { similarCases(input: $input) { hits { jointDistance shallowDistance middleDistance deepDistance case { externalId } } } }`;

let svc: TestService;
let browser: BrowserContext;
let page: Page;
let profileDir: string;
let filesDir: string;
const caseIds: string[] = [];
const pageErrors: string[] = [];

interface Card {
  heading: string;
  distances: Record<string, number>;
  facts: Record<string, string>;
  report: string;
  images: { alt: string; naturalWidth: number }[];
}

/** What a hit card shows, read from the DOM the way a person would read it. */
async function cards(): Promise<Card[]> {
  // No named helpers inside: tsx would wrap them in a __name() call the page does not have.
  const raw = await page.$$eval('#hits li.hit article', (articles) =>
    articles.map((a) => ({
      heading: a.querySelector('h3')!.textContent!.trim(),
      distances: [...a.querySelectorAll('dl.distances dt')].map((dt) => [dt.textContent!.trim(), Number(dt.nextElementSibling!.textContent)] as const),
      facts: [...a.querySelectorAll('dl.facts dt')].map((dt) => [dt.textContent!.trim(), dt.nextElementSibling!.textContent!.trim()] as const),
      report: a.querySelector('.report')?.textContent?.trim() ?? '',
      images: [...a.querySelectorAll('img')].map((img) => ({ alt: img.alt, naturalWidth: img.naturalWidth })),
    })),
  );
  return raw.map((c) => ({ ...c, distances: Object.fromEntries(c.distances), facts: Object.fromEntries(c.facts) }));
}

/** Waits for the status line after a search; an error shown instead fails with its text. */
async function waitForStatus(text: string | RegExp): Promise<void> {
  const done = page.getByRole('status').filter({ hasText: text });
  const failed = page.getByRole('alert');
  await done.or(failed).first().waitFor();
  if (await failed.isVisible()) assert.fail(`the page shows an error: ${await failed.textContent()}`);
}

async function allImagesLoaded(): Promise<void> {
  await page.waitForFunction(() => [...document.images].every((img) => img.complete));
}

async function apiHits(input: Record<string, unknown>) {
  const res = await svc.gql(SEARCH, { input }, 'reader');
  assert.equal(res.errors, undefined, JSON.stringify(res.errors));
  return res.data.similarCases.hits as { jointDistance: number; shallowDistance: number; middleDistance: number; deepDistance: number; case: { externalId: string } }[];
}

before(async () => {
  const chromiumFound = await findChromium();
  console.log(`# results page in ${chromiumFound.source}`);
  svc = await startTestService();
  for (const c of CASES) {
    const res = await svc.gql(
      `mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }`,
      {
        input: {
          externalId: c.externalId,
          patientKey: c.patientKey,
          images: phantomSlices({ seed: 70 + caseIds.length, diameterPx: c.diameterPx, texture: c.texture, lobulation: 'lobulation' in c ? c.lobulation : 0 }),
          malignancy: c.malignancy,
          diameterMm: c.mm,
          report: { text: c.report, impression: c.malignancy >= 4 ? 'suspicious' : 'likely benign' },
        },
      },
      'writer',
    );
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
    caseIds.push(res.data.ingestCase.id);
  }
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-chromium-'));
  filesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-upload-'));
  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumFound.executablePath,
    headless: true,
    args: chromiumFound.args,
    env: chromiumFound.env,
    viewport: { width: 1400, height: 1000 },
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(60_000);
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) pageErrors.push(msg.text());
  });
});

after(async () => {
  await browser?.close();
  await svc?.stop();
  for (const dir of [profileDir, filesDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test(`a reader pastes the key, picks a stored case with the keyboard and sees the ranked cases (${databaseLabel})`, async () => {
  await page.goto(`${svc.url}/`);
  assert.equal(await page.title(), 'Similar nodule search');
  await page.getByLabel('API key', { exact: true }).fill(KEYS.reader);
  await page.getByLabel('API key', { exact: true }).press('Enter');
  await waitForStatus('6 stored cases listed.');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('fcdn.apiKey')), KEYS.reader, 'the key is kept in this tab only');

  await page.getByLabel('Stored case', { exact: true }).selectOption(caseIds[1]!);
  await page.getByLabel('Number of cases (k)').fill('4');
  // Keyboard only from here: Tab to the Search button and press Enter.
  await page.getByLabel('Leave out other cases').focus();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'search-button', 'Search is the next stop after the options');
  await page.keyboard.press('Enter');
  await waitForStatus(/Found 4 similar cases in \d+ ms/);
  await allImagesLoaded();
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'results-heading', 'focus moves to the results');

  const expected = await apiHits({ caseId: caseIds[1], k: 4 });
  const shown = await cards();
  assert.equal(shown.length, 4);
  assert.ok(!shown.some((c) => /res-0/.test(c.heading)), 'the query patient\'s other case is left out');
  for (const [i, card] of shown.entries()) {
    const hit = expected[i]!;
    const spec = CASES.find((c) => c.externalId === hit.case.externalId)!;
    assert.match(card.heading, new RegExp(`^${i + 1}\\. case ${spec.externalId} — `), 'cards in the API\'s rank order');
    assert.deepEqual(card.distances, { Joint: hit.jointDistance, DL: hit.shallowDistance, DM: hit.middleDistance, DD: hit.deepDistance });
    assert.equal(card.facts.Size, `${spec.mm} mm`);
    assert.match(card.facts.Diagnosis!, new RegExp(`\\(malignancy ${spec.malignancy} of 5\\)$`));
    assert.ok(card.report.includes(spec.report), `report excerpt of ${spec.externalId}`);
    assert.equal(card.images.length, 3, 'three slices per case');
    for (const img of card.images) {
      assert.ok(img.naturalWidth > 0, `image "${img.alt}" loaded`);
      assert.match(img.alt, new RegExp(`^Rank ${i + 1}, case ${spec.externalId}, slice at offset -?\\d$`));
    }
  }
  const joints = shown.map((c) => c.distances.Joint!);
  assert.deepEqual(joints, [...joints].sort((a, b) => a - b), 'Joint distances ascend');

  const query = await page.$$eval('#query-slices img', (imgs) => imgs.map((i) => ({ alt: (i as HTMLImageElement).alt, w: (i as HTMLImageElement).naturalWidth })));
  assert.deepEqual(query.map((q) => q.alt), [-1, 0, 1].map((o) => `Query case res-1, slice at offset ${o}`));
  assert.ok(query.every((q) => q.w > 0), 'query slices loaded');
  assert.equal(await page.getByRole('heading', { level: 3 }).count(), 4, 'one heading per hit');

  const shot = path.join(filesDir, 'results-page.png');
  await page.screenshot({ path: shot, fullPage: true });
  if (process.env.UPDATE_SCREENSHOTS === '1') fs.copyFileSync(shot, SCREENSHOT);

  // The same answer at a phone's width: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 1000 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scroll at 390 px');
  const stored_narrow = path.join(filesDir, 'results-page-stored-narrow.png');
  await page.screenshot({ path: stored_narrow, fullPage: true });
  keepScreenshot(stored_narrow, 'results-page-stored-narrow.png');
  await page.setViewportSize({ width: 1400, height: 1000 });
  assert.deepEqual(pageErrors, []);
});

test('typing an external id instead of choosing from the list searches with that case', async () => {
  await page.getByLabel('or case id / external id').fill('res-4');
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForStatus(/Found 4 similar cases/);
  assert.equal(await page.locator('#query-caption').textContent(), 'case res-4: Benign, 8 mm.');
  const expected = await apiHits({ caseId: caseIds[4], k: 4 });
  assert.deepEqual((await cards()).map((c) => /case (res-\d)/.exec(c.heading)![1]), expected.map((h) => h.case.externalId));
  await page.getByLabel('or case id / external id').fill('');
});

test('PNG slices chosen from disk or dropped on the page, and a DICOM slice, are the query', async () => {
  const slices = phantomSlices({ seed: 555, diameterPx: 20, texture: 'part-solid' });
  const files = slices.map((s, i) => {
    const file = path.join(filesDir, `slice-${i + 1}.png`);
    fs.writeFileSync(file, Buffer.from(s.data, 'base64'));
    return file;
  });
  await page.getByLabel(/PNG or DICOM slices of one nodule/).setInputFiles(files);
  assert.equal(await page.getByLabel('image files (PNG or DICOM)').isChecked(), true, 'choosing files switches the query source');
  await page.locator('#file-list li').nth(2).waitFor();
  assert.deepEqual(await page.locator('#file-list li').allTextContents(), ['slice-1.png — PNG, offset -1', 'slice-2.png — PNG, offset 0', 'slice-3.png — PNG, offset 1']);
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForStatus(/Found 4 similar cases/);
  await allImagesLoaded();
  const expected = await apiHits({ images: slices, k: 4 });
  const shown = await cards();
  assert.deepEqual(shown.map((c) => /case (res-\d)/.exec(c.heading)![1]), expected.map((h) => h.case.externalId));
  assert.deepEqual(shown.map((c) => c.distances.Joint), expected.map((h) => h.jointDistance));
  const previews = await page.$$eval('#query-slices img', (imgs) => imgs.map((i) => ({ alt: (i as HTMLImageElement).alt, w: (i as HTMLImageElement).naturalWidth })));
  assert.deepEqual(previews.map((p) => p.alt), ['Uploaded slice slice-1.png (PNG) at offset -1', 'Uploaded slice slice-2.png (PNG) at offset 0', 'Uploaded slice slice-3.png (PNG) at offset 1']);
  assert.ok(previews.every((p) => p.w === 64), 'the uploaded PNGs are shown (as the model sees them)');

  // One slice dropped on the drop zone (a centre slice alone is a valid query).
  const dropped = await page.evaluateHandle((b64) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0))], 'dropped-centre.png', { type: 'image/png' }));
    return transfer;
  }, slices[1]!.data);
  await page.locator('#drop-zone').dispatchEvent('drop', { dataTransfer: dropped });
  await page.locator('#file-list li').filter({ hasText: 'dropped-centre.png' }).waitFor();
  assert.deepEqual(await page.locator('#file-list li').allTextContents(), ['dropped-centre.png — PNG, offset 0']);
  await page.getByLabel('Number of cases (k)').fill('3');
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForStatus(/Found 3 similar cases/);
  const single = await apiHits({ images: [{ data: slices[1]!.data, offset: 0 }], k: 3 });
  assert.deepEqual((await cards()).map((c) => c.distances.Joint), single.map((h) => h.jointDistance));

  // A DICOM CT slice, named without an extension (the kind comes from the bytes): sent as it is;
  // the page shows the service's preview, the windowed patch the model was given.
  const dicom = makePhantomDicom({ seed: 556, diameterPx: 20 });
  const dicomFile = path.join(filesDir, 'centre');
  fs.writeFileSync(dicomFile, dicom);
  await page.getByLabel(/PNG or DICOM slices of one nodule/).setInputFiles(dicomFile);
  await page.locator('#file-list li').filter({ hasText: 'centre — DICOM, offset 0' }).waitFor();
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForStatus(/Found 3 similar cases/);
  await allImagesLoaded();
  const preview = page.getByRole('img', { name: 'Uploaded slice centre (DICOM) at offset 0' });
  assert.equal(await preview.count(), 1);
  const spread = await preview.evaluate((img: HTMLImageElement) => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const g = canvas.getContext('2d')!;
    g.drawImage(img, 0, 0);
    const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let lo = 255;
    let hi = 0;
    for (let i = 0; i < px.length; i += 4) {
      lo = Math.min(lo, px[i]!);
      hi = Math.max(hi, px[i]!);
    }
    return { w: img.naturalWidth, lo, hi };
  });
  assert.equal(spread.w, 64);
  assert.ok(spread.hi - spread.lo > 100, `the DICOM preview shows the nodule (grey levels ${spread.lo}..${spread.hi})`);
  const dicomShot = path.join(filesDir, 'results-page-dicom.png');
  await page.screenshot({ path: dicomShot, fullPage: true });
  keepScreenshot(dicomShot, 'results-page-dicom.png');

  // The same answer at a phone's width: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 1000 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scroll at 390 px');
  const dicom_narrow = path.join(filesDir, 'results-page-dicom-narrow.png');
  await page.screenshot({ path: dicom_narrow, fullPage: true });
  keepScreenshot(dicom_narrow, 'results-page-dicom-narrow.png');
  await page.setViewportSize({ width: 1400, height: 1000 });
  const fromDicom = await apiHits({ images: [{ data: dicom.toString('base64'), offset: 0 }], k: 3 });
  assert.deepEqual((await cards()).map((c) => /case (res-\d)/.exec(c.heading)![1]), fromDicom.map((h) => h.case.externalId));
  assert.deepEqual(pageErrors, []);
});

test('the service\'s errors are shown with their message: a bad k, an unknown case, a wrong key', async () => {
  const alert = page.getByRole('alert');
  assert.ok((await page.locator('#hits li.hit').count()) > 0, 'results of the last search are shown');
  await page.getByLabel('Number of cases (k)').fill('0');
  await page.getByRole('button', { name: 'Search' }).click();
  await alert.filter({ hasText: 'k must be an integer from 1 to 1000, got 0 (BAD_USER_INPUT)' }).waitFor();
  assert.equal(await page.locator('#hits li').count(), 0, 'the error replaces the earlier results');
  assert.equal(await page.locator('#query-slices img').count(), 0, 'and the earlier query');
  assert.equal(await page.locator('#results-summary').textContent(), 'No results: the search failed (see the error above).');

  await page.getByLabel('Number of cases (k)').fill('4');
  await page.getByLabel('a stored case').check();
  assert.equal(await alert.isVisible(), false, 'switching the query source clears the error');
  await page.getByLabel('or case id / external id').fill('no-such-case');
  await page.getByRole('button', { name: 'Search' }).click();
  await alert.filter({ hasText: 'No case has the id or external id "no-such-case".' }).waitFor();

  await page.getByRole('button', { name: 'Forget key' }).click();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('fcdn.apiKey')), null);
  await page.getByLabel('API key', { exact: true }).fill('not-a-real-key');
  await page.getByRole('button', { name: 'Use key' }).click();
  await alert.filter({ hasText: 'the API key is not valid (UNAUTHENTICATED)' }).waitFor();
  assert.equal(await page.getByLabel('Stored case', { exact: true }).locator('option').first().textContent(), 'Could not list cases');
  assert.deepEqual(pageErrors, []);
});

// ---------------------------------------------------------------- issue 12: ties, decision aid, any width, clean state

/** Three 16-bit HU slices (HU + 32768, as DICOM ingests are stored): flat grey unless windowed. */
const HU_TWIN = [-1, 0, 1].map((offset) => ({ offset, data: makePhantomPng({ seed: 777 + offset, size: 64, diameterPx: 22 - 4 * Math.abs(offset), texture: 'part-solid', lobulation: 0.25, bitDepth: 16 }).toString('base64') }));
const TWINS = 12;
const OUTER_SLICES = [-4, -3, -2, 2, 3, 4].map((offset) => ({ offset, data: makePhantomPng({ seed: 790 + offset, size: 64, diameterPx: Math.max(4, 22 - 4 * Math.abs(offset)), texture: 'part-solid', bitDepth: 16 }).toString('base64') }));
const LONG_ID = 'LIDC-IDRI-0001-nodule-with-a-deliberately-long-external-identifier-0123456789abcdef';
const twinIds: string[] = [];

async function useKey(): Promise<void> {
  await page.getByLabel('API key', { exact: true }).fill(KEYS.reader);
  await page.getByRole('button', { name: 'Use key' }).click();
  await waitForStatus(/stored cases listed/);
}

async function searchTwinFiles(k: number): Promise<void> {
  const files = HU_TWIN.map((s, i) => {
    const file = path.join(filesDir, `hu-${i + 1}.png`);
    // Written once: a file changed after the page chose it can no longer be read there.
    if (!fs.existsSync(file)) fs.writeFileSync(file, Buffer.from(s.data, 'base64'));
    return file;
  });
  await page.getByLabel(/PNG or DICOM slices of one nodule/).setInputFiles(files);
  await page.locator('#file-list li').nth(2).waitFor();
  await page.getByLabel('Number of cases (k)').fill(String(k));
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForStatus(new RegExp(`Found ${k} similar cases`));
  await allImagesLoaded();
}

test('equal Joint distances are one tie group with the server\'s count; the class mix, sizes, findings and distance bars are shown', async () => {
  // Twelve cases of twelve patients with the same three HU slices: all tied at Joint 0 to a query of them.
  for (let i = 0; i < TWINS; i++) {
    const res = await svc.gql(
      `mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }`,
      {
        input: {
          externalId: i === 0 ? LONG_ID : `twin-${i}`,
          patientKey: `PSEUDO-T${i}`,
          // The last one stored with nine slices, as the importer keeps them: the search sees its
          // central three (the slice window), so it is tied with the others all the same.
          images: i === TWINS - 1 ? [...HU_TWIN, ...OUTER_SLICES] : HU_TWIN,
          malignancy: i % 3 === 0 ? 2 : 5,
          diameterMm: 12 + i,
          findings: { texture: 5, spiculation: 1 + (i % 5), margin: 4, subtlety: 5, import: { source: 'phantoms' } },
          report: { text: `Part-solid nodule number ${i}, lobulated margin.` },
        },
      },
      'writer',
    );
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
    twinIds.push(res.data.ingestCase.id);
  }
  await useKey();
  await searchTwinFiles(5);

  const res = await svc.gql(`query ($input: SimilarCasesInput!) { similarCases(input: $input) { tiedAtCutoff hits { jointDistance tieGroupSize case { malignancyClass diameterMm } } } }`, { input: { images: HU_TWIN, k: 5 } }, 'reader');
  const api = res.data.similarCases;
  assert.equal(api.tiedAtCutoff, TWINS);
  assert.ok(api.hits.every((h: { jointDistance: number }) => h.jointDistance === 0));

  const note = page.locator('.tie-group .tie-note');
  assert.equal(await note.count(), 1, 'one tie group');
  assert.equal((await note.textContent())!.trim(), `Tie: These 5 cases are tied at Joint 0 with ${TWINS - 5} other cases not shown; order among them is arbitrary.`);
  assert.equal(await page.locator('.tie-group li.hit').count(), 5, 'the five hits are inside the group');

  const malignant = api.hits.filter((h: { case: { malignancyClass: string } }) => h.case.malignancyClass === 'MALIGNANT').length;
  const sizes = api.hits.map((h: { case: { diameterMm: number } }) => h.case.diameterMm).sort((a: number, b: number) => a - b);
  const mix = (await page.locator('#decision-aid .mix').textContent())!;
  assert.ok(mix.startsWith(`Top 5: ${malignant} of 5 malignant, ${5 - malignant} benign; ${sizes[0]}–${sizes[4]} mm`), mix);
  assert.match((await page.locator('#decision-aid').textContent())!, new RegExp(`The cut at 5 falls inside a tie of ${TWINS} cases at Joint 0; ${TWINS - 5} of them are not counted here`));

  const [first] = await cards();
  assert.equal(first!.facts.Texture, '5');
  assert.equal(first!.facts.Margin, '4');
  assert.ok('Spiculation' in first!.facts && !('import' in first!.facts), 'ratings shown, bookkeeping not');
  assert.match(await page.locator('#results-summary').textContent() ?? '', /Bars: Hamming distance of each layer's 64-bit codes, 0 \(the same code\) to 64/);
  const bars = await page.locator('#hits li.hit').first().locator('.bar').count();
  assert.equal(bars, 3, 'DL, DM and DD have bars');

  // The stored HU slices are windowed (lung by default); the window choice swaps every image.
  const srcs = () => page.$$eval('#hits img', (imgs) => imgs.map((i) => (i as HTMLImageElement).src));
  assert.ok((await srcs()).every((u) => u.endsWith('&window=lung')));
  const original = await page.locator('#hits li.hit').first().getByRole('link', { name: 'original' }).first().getAttribute('href');
  assert.ok(original && !original.includes('window='), 'the original stays downloadable');
  const shot = path.join(filesDir, 'results-page-wide.png');
  await page.screenshot({ path: shot, fullPage: true });
  keepScreenshot(shot, 'results-page-wide.png');
  await page.getByLabel('Display window').selectOption('mediastinal');
  await allImagesLoaded();
  assert.ok((await srcs()).every((u) => u.endsWith('&window=mediastinal')));
  assert.ok((await page.$$eval('#query-slices img', (imgs) => imgs.map((i) => (i as HTMLImageElement).src))).every((u) => u.startsWith('data:image/png')));
  await page.getByLabel('Display window').selectOption('lung');
  assert.deepEqual(pageErrors, []);
});

test('the class and size filters narrow the search, and the summary says so', async () => {
  await page.getByLabel('benign', { exact: true }).check();
  await page.getByLabel('Size from (mm)').fill('12');
  await page.getByLabel('to (mm)').fill('15');
  await page.getByLabel('Number of cases (k)').fill('5');
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForStatus(/Found 2 similar cases/);
  const expected = await apiHits({ images: HU_TWIN, k: 5, filter: { malignancyClass: ['BENIGN'], minDiameterMm: 12, maxDiameterMm: 15 } });
  assert.equal(expected.length, 2);
  const shown = await cards();
  assert.deepEqual(shown.map((c) => c.facts.Size), ['12 mm', '15 mm']);
  assert.ok(shown.every((c) => c.facts.Diagnosis!.startsWith('Benign')));
  assert.match((await page.locator('#decision-aid .mix').textContent())!, /^Top 2 \(only benign, 12–15 mm\): 2 of 2 benign; 12–15 mm/);
  await page.getByLabel('benign', { exact: true }).uncheck();
  await page.getByLabel('Size from (mm)').fill('');
  await page.getByLabel('to (mm)').fill('');
  assert.deepEqual(pageErrors, []);
});

test('at 390 px nothing covers the results, nothing scrolls sideways, long ids wrap with a tooltip, the case list fits', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await searchTwinFiles(5);
  const layout = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    queryPosition: getComputedStyle(document.getElementById('query-panel')!).position,
    queryBottom: document.getElementById('query-panel')!.getBoundingClientRect().bottom,
    hitsTop: document.getElementById('hits-panel')!.getBoundingClientRect().top,
  }));
  assert.ok(layout.scrollWidth <= 390, `no horizontal scrolling (page is ${layout.scrollWidth} px wide)`);
  assert.equal(layout.queryPosition, 'static', 'the query panel is not pinned over the results');
  assert.ok(layout.hitsTop >= layout.queryBottom, 'the hits come below the query');

  // Scrolled to the hits, what is on screen at the first card's centre is that card.
  const card = page.locator('#hits li.hit').first();
  await card.scrollIntoViewIfNeeded();
  const covered = await card.evaluate((li) => {
    const r = li.getBoundingClientRect();
    const at = document.elementFromPoint(r.left + r.width / 2, r.top + Math.min(r.height / 2, 40));
    return !li.contains(at);
  });
  assert.equal(covered, false, 'no panel covers the first hit');

  await page.getByLabel('Number of cases (k)').fill(String(TWINS + 6));
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForStatus(new RegExp(`Found ${TWINS + 6} similar cases`));
  // The nine-slice case shows the five around its centre; the other four are one click away.
  const nine = page.locator('#hits li.hit').filter({ has: page.getByRole('heading', { name: `case twin-${TWINS - 1} —`, exact: false }) });
  assert.equal(await nine.locator('article > .slices img').count(), 5);
  assert.equal((await nine.locator('details.more-slices summary').textContent())!.trim(), '4 more slices (offsets -4 to 4)');
  assert.equal(await nine.locator('details.more-slices img').count(), 4);

  const long = page.getByRole('heading', { level: 3, name: new RegExp(LONG_ID) });
  assert.equal(await long.getAttribute('title'), (await long.textContent())!.trim(), 'the whole heading is the tooltip');
  const longBox = await long.boundingBox();
  assert.ok(longBox && longBox.x >= 0 && longBox.x + longBox.width <= 390, 'the long id wraps inside the screen');
  assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 390);

  await page.getByLabel('Number of cases (k)').fill('5');
  await searchTwinFiles(5);
  await page.evaluate(() => window.scrollTo(0, 0));
  const shot = path.join(filesDir, 'results-page-narrow.png');
  await page.screenshot({ path: shot, fullPage: true });
  keepScreenshot(shot, 'results-page-narrow.png');

  // The case list: as wide as the screen allows, its long entries cut with an ellipsis and whole in a tooltip.
  await page.getByLabel('a stored case').check();
  const select = page.getByLabel('Stored case', { exact: true });
  await select.selectOption(twinIds[0]!);
  const box = (await select.boundingBox())!;
  assert.ok(box.x >= 0 && box.x + box.width <= 390 && box.width >= 250, `the case list is usable (${Math.round(box.width)} px wide at x ${Math.round(box.x)})`);
  assert.match((await select.locator('option:checked').getAttribute('title')) ?? '', new RegExp(LONG_ID));
  assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 390);
  await page.setViewportSize({ width: 1400, height: 1000 });
  assert.deepEqual(pageErrors, []);
});

test('clean state: a JPEG is named and refused on the page, a favicon is served, an empty database names the import command', async () => {
  const favicon = await fetch(`${svc.url}/favicon.ico`);
  assert.equal(favicon.status, 200);
  assert.match(favicon.headers.get('content-type') ?? '', /^image\//);

  const jpeg = path.join(filesDir, 'photo.dcm');
  fs.writeFileSync(jpeg, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(200)]));
  await page.getByLabel(/PNG or DICOM slices of one nodule/).setInputFiles(jpeg);
  await page.locator('#file-list li').filter({ hasText: 'photo.dcm — not accepted: a JPEG image' }).waitFor();
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('alert').filter({ hasText: 'photo.dcm is a JPEG image; send PNG slices' }).waitFor();
  assert.equal(await page.locator('#hits li').count(), 0, 'the refused query leaves no earlier results behind');

  // A database without cases (the list answered empty).
  await page.route('**/graphql', async (route) => {
    if (/query CaseList/.test(route.request().postData() ?? '')) await route.fulfill({ json: { data: { cases: { totalCount: 0, edges: [] } } } });
    else await route.fallback();
  });
  await page.getByLabel('a stored case').check();
  await page.getByRole('button', { name: 'Reload list' }).click();
  await page.getByRole('status').filter({ hasText: 'No cases stored yet. Import a folder of cases with npm run import -- <folder> (docs/import.md)' }).waitFor();
  assert.equal(await page.getByLabel('Stored case', { exact: true }).locator('option').first().textContent(), 'No cases stored yet');
  await page.unroute('**/graphql');
  assert.deepEqual(pageErrors, []);
});

// ---------------------------------------------------------------- issue 12: automated accessibility check (axe-core)

interface AxeSummary {
  state: string;
  width: number;
  byImpact: Record<string, number>;
  serious: string[];
  ids: string[];
  passed: number;
  review: string[];
}

/** Runs axe-core (all its rules) on the page as it is; returns the violations counted by impact. */
async function axeCheck(state: string, width: number): Promise<AxeSummary> {
  const results = await new AxeBuilder({ page }).analyze();
  const byImpact: Record<string, number> = { critical: 0, serious: 0, moderate: 0, minor: 0 };
  const serious: string[] = [];
  for (const v of results.violations) {
    byImpact[v.impact ?? 'minor'] = (byImpact[v.impact ?? 'minor'] ?? 0) + v.nodes.length;
    const line = `${v.impact} ${v.id} (${v.nodes.length}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`;
    if (v.impact === 'serious' || v.impact === 'critical') serious.push(line);
    else console.log(`axe ${state} @ ${width} px: ${line}`);
  }
  return { state, width, byImpact, serious, ids: results.violations.map((v) => v.id), passed: results.passes.length, review: results.incomplete.map((v) => v.id) };
}

test('accessibility (axe-core): no serious or critical violations when empty, with a tie group and with an error, at 1400 and 390 px', async (t) => {
  const summaries: AxeSummary[] = [];
  for (const width of [1400, 390]) {
    await page.setViewportSize({ width, height: width > 800 ? 1000 : 844 });
    // Empty: a fresh tab without a key.
    await page.goto(`${svc.url}/`);
    await page.evaluate(() => sessionStorage.clear());
    await page.goto(`${svc.url}/`);
    await page.getByLabel('API key', { exact: true }).waitFor();
    summaries.push(await axeCheck('empty', width));
    // Results with a tie group (the twelve twins stored above).
    await useKey();
    await searchTwinFiles(5);
    assert.equal(await page.locator('.tie-group .tie-note').count(), 1, 'the tie group is on the page');
    summaries.push(await axeCheck('results with a tie group', width));
    // An error.
    await page.getByLabel('Number of cases (k)').fill('0');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('alert').filter({ hasText: 'BAD_USER_INPUT' }).waitFor();
    summaries.push(await axeCheck('error', width));
    await page.getByLabel('Number of cases (k)').fill('5');
  }
  await page.setViewportSize({ width: 1400, height: 1000 });
  for (const s of summaries) {
    const line = `axe ${s.state} @ ${s.width} px: ${Object.entries(s.byImpact).map(([k, n]) => `${k} ${n}`).join(', ')} (${s.passed} rules passed; for a person to review: ${s.review.join(', ') || 'none'})`;
    console.log(line);
    t.diagnostic(line);
  }
  // The checker itself: an image without a text alternative and a nameless button are found.
  await page.evaluate(() => {
    const probe = document.createElement('div');
    probe.id = 'axe-probe';
    probe.innerHTML = '<img src="/favicon.ico"><button></button>';
    document.querySelector('main')?.append(probe) ?? document.body.append(probe);
  });
  const probe = await axeCheck('probe', 1400);
  await page.evaluate(() => document.getElementById('axe-probe')?.remove());
  assert.ok(probe.ids.includes('image-alt') && probe.ids.includes('button-name'), `axe finds planted violations: ${probe.ids.join(', ')}`);
  assert.ok(summaries.every((s) => s.passed > 10), 'axe ran its rules on every state');
  const serious = summaries.flatMap((s) => s.serious.map((l) => `${s.state} @ ${s.width} px: ${l}`));
  assert.deepEqual(serious, [], `serious or critical accessibility violations:\n${serious.join('\n')}`);
  assert.deepEqual(pageErrors, []);
});
