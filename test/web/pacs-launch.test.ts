/**
 * The results page as a viewer's launch target (docs/pacs.md): a viewer opens
 * /?studyInstanceUid=…&seriesInstanceUid=…&sopInstanceUid=…&x=…&y=… and the page runs the PACS
 * search at once (key from the tab's session storage, else it asks for one first), showing the
 * hits the API gives and an "open in viewer" link on each. A real PACS (Orthanc) holds the series;
 * headless Chromium drives the page. Screenshot: docs/figures/results-page-pacs-launch.png
 * (written when UPDATE_SCREENSHOTS=1).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { findChromium } from '../support/browser.ts';
import { ctSeries, type CtSeries } from '../../fixtures/ct-series.ts';
import { startOrthanc, type Orthanc } from '../../fixtures/orthanc.ts';
import { phantomSlices } from '../../fixtures/phantom-cases.ts';
import { databaseLabel } from '../../fixtures/test-database.ts';
import { KEYS, startTestService, type TestService } from '../../fixtures/test-service.ts';

const VIEWER = 'https://viewer.example/viewer?StudyInstanceUIDs={studyInstanceUid}';

let pacs: Orthanc;
let svc: TestService;
let series: CtSeries;
/** The nodule the launch link names (PacsNoduleInput without the point). */
const uids = () => ({ studyInstanceUid: series.studyInstanceUid, seriesInstanceUid: series.seriesInstanceUid, sopInstanceUid: series.slices[1]!.sopInstanceUid });
let browser: BrowserContext;
let page: Page;
let profileDir: string;
const pageErrors: string[] = [];

before(async () => {
  const found = await findChromium();
  pacs = await startOrthanc();
  series = ctSeries({ seed: 41, slices: 3, transferSyntaxes: ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.5'] });
  for (const s of series.slices) await pacs.upload(s.file);
  svc = await startTestService({ env: { FCDN_DICOMWEB_URL: pacs.dicomwebUrl, FCDN_PATIENT_KEY_SECRET: 'launch-test-patient-key-secret-0123456789', FCDN_VIEWER_URL_TEMPLATE: VIEWER } });
  for (let i = 0; i < 4; i++) {
    const r = await svc.gql('mutation ($input: IngestCaseInput!) { ingestCase(input: $input) { id } }', {
      input: { externalId: `launch-${i}`, patientKey: `PSEUDO-L${i}`, malignancy: 2 + i, diameterMm: 6 + 4 * i, images: phantomSlices({ seed: 500 + i, diameterPx: 8 + 4 * i }) },
    }, 'writer');
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  }
  // One gallery case imported from the PACS itself: it carries a study UID, so it gets a viewer link.
  const imported = await svc.gql('mutation ($input: ImportFromPacsInput!) { importFromPacs(input: $input) { id } }', {
    input: { externalId: 'launch-pacs', patientKey: 'PSEUDO-LP', malignancy: 5, diameterMm: 19, nodule: { ...uids(), centerX: 48, centerY: 48 } },
  }, 'writer');
  assert.equal(imported.errors, undefined, JSON.stringify(imported.errors));
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-chromium-'));
  browser = await chromium.launchPersistentContext(profileDir, { executablePath: found.executablePath, headless: true, args: found.args, env: found.env, viewport: { width: 1400, height: 1000 } });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(60_000);
  page.on('pageerror', (err) => pageErrors.push(err.message));
});

after(async () => {
  await browser?.close();
  await svc?.stop();
  await pacs?.stop();
  if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
});

const launch = (extra = '') =>
  `${svc.url}/?studyInstanceUid=${series.studyInstanceUid}&seriesInstanceUid=${series.seriesInstanceUid}&sopInstanceUid=${series.slices[1]!.sopInstanceUid}&x=47.5&y=50${extra}`;

async function waitForStatus(text: RegExp): Promise<void> {
  const failed = page.getByRole('alert');
  await page.getByRole('status').filter({ hasText: text }).or(failed).first().waitFor();
  if (await failed.isVisible()) assert.fail(`the page shows an error: ${await failed.textContent()}`);
}

test(`a viewer's launch link runs the PACS search at once, asking for the key first when the tab has none (${databaseLabel})`, async () => {
  await page.goto(launch());
  // No key in this tab yet: the page asks, names the nodule, and searches once the key is given.
  await page.getByRole('status').filter({ hasText: /Enter an API key to search for the PACS nodule/ }).waitFor();
  await page.getByLabel('API key', { exact: true }).fill(KEYS.reader);
  await page.getByLabel('API key', { exact: true }).press('Enter');
  await waitForStatus(/Found \d+ similar cases in \d+ ms/);

  const expected = await svc.gql('query ($input: SimilarCasesInput!) { similarCases(input: $input) { hits { jointDistance case { externalId viewerUrl } } } }', {
    input: { k: 5, pacs: { ...uids(), centerX: 47.5, centerY: 50 } },
  }, 'reader');
  const hits = expected.data.similarCases.hits as { jointDistance: number; case: { externalId: string; viewerUrl: string | null } }[];
  const headings = await page.$$eval('#hits li.hit h3', (hs) => hs.map((h) => h.textContent!.trim()));
  assert.equal(headings.length, hits.length);
  hits.forEach((h, i) => assert.match(headings[i]!, new RegExp(`^${i + 1}\\. case ${h.case.externalId} — `)));
  // Every hit with a study UID carries the viewer link from FCDN_VIEWER_URL_TEMPLATE.
  const links = await page.$$eval('#hits li.hit', (lis) => lis.map((li) => li.querySelector<HTMLAnchorElement>('a.viewer-link')?.href ?? null));
  assert.deepEqual(links, hits.map((h) => h.case.viewerUrl));
  assert.ok(links.includes(`https://viewer.example/viewer?StudyInstanceUIDs=${series.studyInstanceUid}`));
  // The query panel names the nodule and shows the fetched slices as the model saw them.
  assert.match(await page.locator('#query-caption').textContent() ?? '', new RegExp(`PACS nodule .*${series.slices[1]!.sopInstanceUid.replace(/\./g, '\\.')}`));
  assert.equal(await page.locator('#query-slices img').count(), 3);
  await page.waitForFunction(() => [...document.images].every((img) => img.complete && img.naturalWidth > 0));
  const shot = path.join(profileDir, 'results-page-pacs-launch.png');
  await page.screenshot({ path: shot, fullPage: true });
  if (process.env.UPDATE_SCREENSHOTS === '1') fs.copyFileSync(shot, 'docs/figures/results-page-pacs-launch.png');
  // A phone-width viewer pane: nothing scrolls sideways, the viewer links stay inside their cards.
  await page.setViewportSize({ width: 390, height: 900 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the page scrolls sideways at 390 px');
  const narrow = path.join(profileDir, 'results-page-pacs-launch-narrow.png');
  await page.screenshot({ path: narrow, fullPage: true });
  if (process.env.UPDATE_SCREENSHOTS === '1') fs.copyFileSync(narrow, 'docs/figures/results-page-pacs-launch-narrow.png');
  await page.setViewportSize({ width: 1400, height: 1000 });

  // With the key in the tab, the link searches on load without a click.
  await page.goto(launch('&neighbours=0'));
  await waitForStatus(/Found \d+ similar cases in \d+ ms/);
  assert.equal(await page.locator('#query-slices img').count(), 1);

  // A broken link says what is wrong and runs nothing.
  await page.goto(`${svc.url}/?studyInstanceUid=1.2.3&x=4`);
  await page.getByRole('alert').filter({ hasText: /lacks seriesInstanceUid, sopInstanceUid, y/ }).waitFor();
  assert.deepEqual(pageErrors, []);
});
