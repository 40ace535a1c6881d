/** Fields of the object types: relations through this request's DataLoaders. */
import type * as db from '../generated/prisma/client.ts';
import type { CaseRecord, StudyRecord } from '../repositories/case.repository.ts';
import type { RankedCase } from '../repositories/search.repository.ts';
import { parseDisplayWindow } from '../imaging/display.ts';
import type { SimilarCasesAnswer } from '../services/search.service.ts';
import type { GraphQLContext } from './context.ts';
import { codeKey } from '../services/loaders.ts';
import { optionalId } from './ids.ts';

export const NoduleCase = {
  study: (c: CaseRecord, _: unknown, ctx: GraphQLContext) => (c.studyId == null ? null : ctx.loaders.studyById.load(c.studyId)),
  slices: (c: CaseRecord, _: unknown, ctx: GraphQLContext) => ctx.loaders.slicesByCase.load(c.id),
  reports: (c: CaseRecord, _: unknown, ctx: GraphQLContext) => ctx.loaders.reportsByCase.load(c.id),
  /** FCDN_VIEWER_URL_TEMPLATE filled with the case's UIDs; null without a template or a study. */
  async viewerUrl(c: CaseRecord, _: unknown, ctx: GraphQLContext) {
    const links = ctx.services.viewerLinks;
    if (c.studyId == null || !links.names('studyInstanceUid')) return null;
    const study = await ctx.loaders.studyById.load(c.studyId);
    const centre = links.names('sopInstanceUid') ? (await ctx.loaders.slicesByCase.load(c.id)).find((s) => s.sliceOffset === 0) : undefined;
    return links.forCase({ studyInstanceUid: study?.studyInstanceUid, seriesInstanceUid: c.seriesInstanceUid, sopInstanceUid: centre?.sopInstanceUid });
  },
};

export const Slice = {
  offset: (s: db.Slice) => s.sliceOffset,
  imageUrl: (s: db.Slice, _: unknown, ctx: GraphQLContext) => ctx.imageUrl(s.id),
  /** The same signed URL with ?window=: the /images route renders it (services/display-images.ts). */
  displayUrl: (s: db.Slice, { window }: { window?: string | null }, ctx: GraphQLContext) => `${ctx.imageUrl(s.id)}&window=${parseDisplayWindow(window)}`,
  async codes(s: db.Slice, { modelId }: { modelId?: string | null }, ctx: GraphQLContext) {
    const model = optionalId(modelId, 'modelId') ?? (await ctx.loaders.activeModel())?.id;
    if (model == null) return null;
    return ctx.loaders.codes.load(codeKey(model, s.id));
  },
};

export const Study = {
  cases: (s: StudyRecord, _: unknown, ctx: GraphQLContext) => ctx.loaders.casesByStudy.load(s.id),
  reports: (s: StudyRecord, _: unknown, ctx: GraphQLContext) => ctx.loaders.reportsByStudy.load(s.id),
};

export const DiagnosticReport = {
  study: (r: db.DiagnosticReport, _: unknown, ctx: GraphQLContext) => (r.studyId == null ? null : ctx.loaders.studyById.load(r.studyId)),
  case: (r: db.DiagnosticReport, _: unknown, ctx: GraphQLContext) => (r.caseId == null ? null : ctx.loaders.caseById.load(r.caseId)),
};

export const SimilarCasesResult = {
  queryPreviews: (r: SimilarCasesAnswer, { window }: { window?: string | null }, ctx: GraphQLContext) => {
    if (!r.queryImages) return null;
    const inWindow = new Map(r.queryImages.map((q) => [q.offset, q.inSliceWindow]));
    return ctx.services.display.queryPreviews(r.queryImages, parseDisplayWindow(window)).map((p) => ({ ...p, inSliceWindow: inWindow.get(p.offset) }));
  },
};

export const SimilarCaseHit = {
  case: (h: RankedCase, _: unknown, ctx: GraphQLContext) => ctx.loaders.caseById.load(h.caseId),
};

export const ModelVersion = {
  /** The provider of the loaded session; 'unavailable' (its load failed) or 'not loaded' instead of loading one for a listing. */
  async executionProvider(m: db.ModelVersion, _: unknown, ctx: GraphQLContext) {
    return ctx.services.models.executionProvider(m);
  },
};

export const ReindexJob = {
  model: (j: db.ReindexJob, _: unknown, ctx: GraphQLContext) => ctx.loaders.modelById.load(j.modelId),
};
