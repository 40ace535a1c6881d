import { NotFoundError } from '../errors.ts';
import type { AttachReportInput } from '../services/case.service.ts';
import type { IngestCaseInput } from '../services/ingest.service.ts';
import type { ImportFromPacsInput } from '../services/pacs.service.ts';
import type { GraphQLContext } from './context.ts';
import { optionalId, parseId } from './ids.ts';

export const Mutation = {
  async ingestCase(_: unknown, { input }: { input: IngestCaseInput }, ctx: GraphQLContext) {
    ctx.require('writer');
    const id = await ctx.services.ingest.ingestCase(input);
    const stored = await ctx.loaders.caseById.load(id);
    // A deleteCase that ran right after the commit wins; say so rather than return null.
    if (!stored) throw new NotFoundError(`case ${id} was stored and then deleted by a concurrent deleteCase before it could be read back`);
    return stored;
  },

  async importFromPacs(_: unknown, { input }: { input: ImportFromPacsInput }, ctx: GraphQLContext) {
    ctx.require('writer');
    const id = await ctx.services.pacs.importFromPacs(input);
    const stored = await ctx.loaders.caseById.load(id);
    if (!stored) throw new NotFoundError(`case ${id} was stored and then deleted by a concurrent deleteCase before it could be read back`);
    return stored;
  },

  async createSliceUpload(_: unknown, { contentType, byteLength }: { contentType: string; byteLength: number }, ctx: GraphQLContext) {
    ctx.require('writer');
    return ctx.services.uploads.create(contentType, byteLength, ctx.baseUrl);
  },

  async attachReport(_: unknown, { input }: { input: Omit<AttachReportInput, 'caseId'> & { caseId?: string | null } }, ctx: GraphQLContext) {
    ctx.require('writer');
    return ctx.services.cases.attachReport({ ...input, caseId: optionalId(input.caseId, 'caseId') });
  },

  async deleteCase(_: unknown, { id }: { id: string }, ctx: GraphQLContext) {
    ctx.require('admin');
    return ctx.services.cases.delete(parseId(id));
  },

  async activateModel(_: unknown, { id }: { id: string }, ctx: GraphQLContext) {
    ctx.require('admin');
    return ctx.services.models.activate(parseId(id));
  },

  async registerModel(_: unknown, { path }: { path: string }, ctx: GraphQLContext) {
    ctx.require('admin');
    return ctx.services.models.register(path);
  },

  async reindex(_: unknown, { modelId }: { modelId?: string | null }, ctx: GraphQLContext) {
    ctx.require('admin');
    return ctx.services.reindex.start(optionalId(modelId, 'modelId'));
  },

  async cancelReindex(_: unknown, { id }: { id: string }, ctx: GraphQLContext) {
    ctx.require('admin');
    return ctx.services.reindex.cancel(parseId(id));
  },
};
