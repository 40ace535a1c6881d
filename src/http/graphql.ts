/**
 * Apollo Server on /graphql: the schema, our operation limits, and error formatting that gives
 * every error an extensions.code and never leaks internals.
 */
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import { GraphQLError, validate, type GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import { DomainError } from '../errors.ts';
import type { GraphQLContext } from '../resolvers/context.ts';
import { resolvers } from '../resolvers/index.ts';
import { typeDefs } from '../schema/index.ts';
import { operationLimits } from '../schema/limits.ts';
import type { Metrics } from './metrics.ts';

/** Depth and cost need the request's variables (list sizes), so they run once the operation is known. */
const limitsPlugin: ApolloServerPlugin<GraphQLContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ document, request, schema }) {
        const errors = validate(schema, document, [operationLimits(request.variables ?? {})]);
        if (errors.length > 0) throw errors[0];
      },
    };
  },
};

export function createApolloServer(log: Logger, metrics: Metrics, introspection: boolean) {
  return new ApolloServer<GraphQLContext>({
    typeDefs,
    resolvers: resolvers as never,
    introspection,
    plugins: [limitsPlugin],
    includeStacktraceInErrorResponses: false,
    formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
      const original = unwrapResolverError(error);
      let result = formatted;
      if (original instanceof DomainError) {
        result = { ...formatted, message: original.message, extensions: { code: original.code } };
      } else if (!(original instanceof GraphQLError) && formatted.extensions?.code === 'INTERNAL_SERVER_ERROR') {
        log.error({ err: original, path: formatted.path }, 'unexpected error in a resolver');
        result = { ...formatted, message: 'internal error; the details are in the service log', extensions: { code: 'INTERNAL_SERVER_ERROR' } };
      }
      metrics.graphqlErrors.inc({ code: String(result.extensions?.code ?? 'UNKNOWN') });
      return result;
    },
  });
}
