/**
 * Imports planned cases through the service layer (IngestService, the same code as the
 * ingestCase mutation; PacsService for nodules in the PACS, as importFromPacs), several at a time. Resumable: a case whose externalId is stored with the
 * same content hash (kept in findings.import.sha256) is skipped; one whose source changed is
 * ingested again (ingest replaces a case with the same externalId). A failing case is recorded
 * and the rest go on.
 */
import { DomainError } from '../errors.ts';
import type { Services } from '../services/index.ts';
import type { ImportCase, ImportProblem, LoadedCase } from './import-sources.ts';
import { pacsCaseHash } from './pacs-source.ts';
import { ProgressBar } from './progress.ts';

export interface ImportOptions {
  concurrency: number;
  /** Reads a case's images (PNG or DICOM source; PACS cases need none). */
  load?: (c: ImportCase) => Promise<LoadedCase>;
  /** Where the progress bar goes (stderr). */
  progress: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Named in findings.import.source. */
  source: string;
}

export interface ImportSummary {
  total: number;
  imported: number;
  updated: number;
  unchanged: number;
  failures: ImportProblem[];
  seconds: number;
}

type Outcome = 'imported' | 'updated' | 'unchanged';

function storedHash(findings: unknown): string | undefined {
  const imp = (findings as { import?: { sha256?: unknown } } | null)?.import;
  return typeof imp?.sha256 === 'string' ? imp.sha256 : undefined;
}

/** A nodule in the PACS: the row's hash decides the resume, so an unchanged case costs no fetch. */
async function importFromPacs(services: Services, c: ImportCase, opts: ImportOptions): Promise<Outcome> {
  const sha256 = pacsCaseHash(c);
  const existing = await services.cases.byExternalId(c.externalId);
  if (existing && storedHash(existing.findings) === sha256) return 'unchanged';
  await services.pacs.importFromPacs({
    nodule: c.pacs!,
    externalId: c.externalId,
    patientKey: c.patientKey || null,
    malignancy: c.malignancy,
    diameterMm: c.diameterMm,
    findings: { ...c.findings, import: { source: opts.source, sha256 } },
  });
  return existing ? 'updated' : 'imported';
}

async function importOne(services: Services, c: ImportCase, opts: ImportOptions): Promise<Outcome> {
  if (c.pacs) return importFromPacs(services, c, opts);
  if (!opts.load) throw new Error('no loader for this source');
  const loaded = await opts.load(c);
  const existing = await services.cases.byExternalId(c.externalId);
  if (existing && storedHash(existing.findings) === loaded.sha256) return 'unchanged';
  await services.ingest.ingestCase({
    externalId: c.externalId,
    patientKey: c.patientKey,
    images: loaded.images,
    malignancy: c.malignancy,
    diameterMm: c.diameterMm,
    findings: { ...c.findings, import: { source: opts.source, sha256: loaded.sha256 } },
  });
  return existing ? 'updated' : 'imported';
}

function reasonOf(err: unknown): string {
  if (err instanceof DomainError) return err.message;
  const e = err as Error;
  return e?.message ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(err);
}

export async function runImport(services: Services, cases: readonly ImportCase[], problems: readonly ImportProblem[], opts: ImportOptions): Promise<ImportSummary> {
  const started = performance.now();
  const total = cases.length + problems.length;
  const summary: ImportSummary = { total, imported: 0, updated: 0, unchanged: 0, failures: [...problems], seconds: 0 };
  const bar = new ProgressBar(opts.progress, 'import');
  let done = problems.length;
  const report = () =>
    bar.update({ done, total, detail: `imported ${summary.imported}, updated ${summary.updated}, unchanged ${summary.unchanged}, failed ${summary.failures.length}` });
  report();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < cases.length; i = next++) {
      const c = cases[i]!;
      try {
        summary[await importOne(services, c, opts)]++;
      } catch (err) {
        summary.failures.push({ id: c.externalId, reason: reasonOf(err) });
      }
      done++;
      report();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  bar.finish();
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

export function formatSummary(s: ImportSummary): string {
  const lines = [
    `${s.total} cases in ${s.seconds.toFixed(1)} s: imported ${s.imported}, updated ${s.updated}, unchanged ${s.unchanged} (already stored), failed ${s.failures.length}`,
  ];
  if (s.imported + s.updated === 0) lines.push('nothing new to import');
  if (s.failures.length > 0) {
    lines.push('failures:');
    for (const f of s.failures) lines.push(`  ${f.id}: ${f.reason}`);
  }
  return lines.join('\n');
}
