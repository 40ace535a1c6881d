import type { CaseFilter } from '../repositories/case.repository.ts';
import type { SimilarCasesQuery } from '../services/search.service.ts';
import type { SliceImageInput } from '../services/slice-input.ts';
import type { GraphQLContext } from './context.ts';
import { optionalId, parseId } from './ids.ts';

interface SimilarCasesArgs {
  input: Omit<SimilarCasesQuery, 'caseId' | 'images'> & { caseId?: string | null; images?: SliceImageInput[] | null };
}

export const Query = {
  async similarCases(_: unknown, { input }: SimilarCasesArgs, ctx: GraphQLContext) {
    ctx.require('reader');
    return ctx.services.search.similarCases({ ...input, caseId: optionalId(input.caseId, 'caseId') }, ctx.loaders.reads);
  },

  async case(_: unknown, { id }: { id: string }, ctx: GraphQLContext) {
    ctx.require('reader');
    return ctx.loaders.caseById.load(parseId(id));
  },

  async caseByExternalId(_: unknown, { externalId }: { externalId: string }, ctx: GraphQLContext) {
    ctx.require('reader');
    return ctx.services.cases.byExternalId(externalId, ctx.loaders.reads);
  },

  async cases(_: unknown, args: { first?: number | null; after?: string | null; filter?: CaseFilter | null }, ctx: GraphQLContext) {
    ctx.require('reader');
    const page = await ctx.services.cases.list(args.first ?? 20, args.after, args.filter, ctx.loaders.reads);
    return {
      edges: page.rows.map((node) => ({ cursor: page.cursorOf(node), node })),
      pageInfo: { hasNextPage: page.hasNextPage, endCursor: page.rows.length ? page.cursorOf(page.rows[page.rows.length - 1]!) : null },
      totalCount: page.totalCount,
    };
  },

  async study(_: unknown, { studyInstanceUid }: { studyInstanceUid: string }, ctx: GraphQLContext) {
    ctx.require('reader');
    return ctx.services.cases.study(studyInstanceUid, ctx.loaders.reads);
  },

  async models(_: unknown, __: unknown, ctx: GraphQLContext) {
    ctx.require('reader');
    return ctx.services.models.list();
  },

  async activeModel(_: unknown, __: unknown, ctx: GraphQLContext) {
    ctx.require('reader');
    return (await ctx.services.models.active()).version;
  },

  async reindexJob(_: unknown, { id }: { id: string }, ctx: GraphQLContext) {
    ctx.require('admin');
    return ctx.loaders.jobById.load(parseId(id));
  },

  async reindexJobs(_: unknown, { first }: { first?: number | null }, ctx: GraphQLContext) {
    ctx.require('admin');
    return ctx.services.reindex.list(first ?? 20);
  },
};
