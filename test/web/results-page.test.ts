/**
 * A radiologist's story in a real browser (Debian's headless Chromium driven by playwright-core):
 * open the results page at /, paste a reader key, pick a stored case, search with the keyboard,
 * and see the top-k cases as the API ranks them, with loaded slice images, DL/DM/DD and Joint
 * distances, diagnosis, size and a report excerpt; then search with PNG files chosen from disk
 * and dropped on the page; a wrong key and a bad k show the service's own messages.
 *
 * The screenshot docs/figures/results-page.png is written from this run when UPDATE_SCREENSHOTS=1.
 * Chromium is not optional: without it this test fails (CI installs Debian's `chromium`).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { makePhantomDicom } from '../../src/inference/index.ts';
import { phantomSlices } from '../support/phantom-cases.ts';
import { databaseLabel } from '../support/test-database.ts';
import { KEYS, startTestService, type TestService } from '../support/test-service.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT = 'docs/figures/results-page.png';

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
  const raw = await page.$$eval('#hits > li article', (articles) =>
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
  assert.ok(
    fs.existsSync(CHROMIUM),
    `headless Chromium is needed at ${CHROMIUM} for the results-page test: apt-get install chromium (Debian), or set CHROMIUM_PATH`,
  );
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
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1360, height: 1000 },
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
  assert.deepEqual(await page.locator('#file-list li').allTextContents(), ['slice-1.png — offset -1', 'slice-2.png — offset 0', 'slice-3.png — offset 1']);
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForStatus(/Found 4 similar cases/);
  await allImagesLoaded();
  const expected = await apiHits({ images: slices, k: 4 });
  const shown = await cards();
  assert.deepEqual(shown.map((c) => /case (res-\d)/.exec(c.heading)![1]), expected.map((h) => h.case.externalId));
  assert.deepEqual(shown.map((c) => c.distances.Joint), expected.map((h) => h.jointDistance));
  const previews = await page.$$eval('#query-slices img', (imgs) => imgs.map((i) => ({ alt: (i as HTMLImageElement).alt, w: (i as HTMLImageElement).naturalWidth })));
  assert.deepEqual(previews.map((p) => p.alt), ['Uploaded slice slice-1.png at offset -1', 'Uploaded slice slice-2.png at offset 0', 'Uploaded slice slice-3.png at offset 1']);
  assert.ok(previews.every((p) => p.w === 64), 'the uploaded PNGs are shown');

  // One slice dropped on the drop zone (a centre slice alone is a valid query).
  const dropped = await page.evaluateHandle((b64) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0))], 'dropped-centre.png', { type: 'image/png' }));
    return transfer;
  }, slices[1]!.data);
  await page.locator('#drop-zone').dispatchEvent('drop', { dataTransfer: dropped });
  assert.deepEqual(await page.locator('#file-list li').allTextContents(), ['dropped-centre.png — offset 0']);
  await page.getByLabel('Number of cases (k)').fill('3');
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForStatus(/Found 3 similar cases/);
  const single = await apiHits({ images: [{ data: slices[1]!.data, offset: 0 }], k: 3 });
  assert.deepEqual((await cards()).map((c) => c.distances.Joint), single.map((h) => h.jointDistance));

  // A DICOM CT slice: sent as it is (the service decodes it); the browser shows a labelled placeholder.
  const dicom = makePhantomDicom({ seed: 556, diameterPx: 20 });
  const dicomFile = path.join(filesDir, 'centre.dcm');
  fs.writeFileSync(dicomFile, dicom);
  await page.getByLabel(/PNG or DICOM slices of one nodule/).setInputFiles(dicomFile);
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForStatus(/Found 3 similar cases/);
  assert.equal(await page.getByRole('img', { name: 'DICOM slice centre.dcm, no preview' }).count(), 1);
  const fromDicom = await apiHits({ images: [{ data: dicom.toString('base64'), offset: 0 }], k: 3 });
  assert.deepEqual((await cards()).map((c) => /case (res-\d)/.exec(c.heading)![1]), fromDicom.map((h) => h.case.externalId));
  assert.deepEqual(pageErrors, []);
});

test('the service\'s errors are shown with their message: a bad k, an unknown case, a wrong key', async () => {
  const alert = page.getByRole('alert');
  await page.getByLabel('Number of cases (k)').fill('0');
  await page.getByRole('button', { name: 'Search' }).click();
  await alert.filter({ hasText: 'k must be an integer from 1 to 1000, got 0 (BAD_USER_INPUT)' }).waitFor();

  await page.getByLabel('Number of cases (k)').fill('4');
  await page.getByLabel('a stored case').check();
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
