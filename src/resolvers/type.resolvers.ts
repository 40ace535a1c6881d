/** Fields of the object types: relations through this request's DataLoaders. */
import type * as db from '../generated/prisma/client.ts';
import type { CaseRecord, StudyRecord } from '../repositories/case.repository.ts';
import type { RankedCase } from '../repositories/search.repository.ts';
import type { GraphQLContext } from './context.ts';
import { codeKey } from './loaders.ts';
import { optionalId } from './ids.ts';

export const NoduleCase = {
  study: (c: CaseRecord, _: unknown, ctx: GraphQLContext) => (c.studyId == null ? null : ctx.loaders.studyById.load(c.studyId)),
  slices: (c: CaseRecord, _: unknown, ctx: GraphQLContext) => ctx.loaders.slicesByCase.load(c.id),
  reports: (c: CaseRecord, _: unknown, ctx: GraphQLContext) => ctx.loaders.reportsByCase.load(c.id),
};

export const Slice = {
  offset: (s: db.Slice) => s.sliceOffset,
  imageUrl: (s: db.Slice, _: unknown, ctx: GraphQLContext) => ctx.imageUrl(s.id),
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

export const SimilarCaseHit = {
  case: (h: RankedCase, _: unknown, ctx: GraphQLContext) => ctx.loaders.caseById.load(h.caseId),
};

export const ModelVersion = {
  /** The provider of the loaded session; a registered model whose file is gone says so instead of failing the list. */
  async executionProvider(m: db.ModelVersion, _: unknown, ctx: GraphQLContext) {
    return ctx.services.models.encoder(m).then((e) => e.executionProvider, () => 'unavailable');
  },
};

export const ReindexJob = {
  model: (j: db.ReindexJob, _: unknown, ctx: GraphQLContext) => ctx.loaders.modelById.load(j.modelId),
};
