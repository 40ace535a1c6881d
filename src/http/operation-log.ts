/**
 * One log line per GraphQL operation, on the request's logger (so it carries reqId): operation
 * name and type, duration and the error codes sent. Never the query text, variables or results:
 * those hold images, report text and keys.
 */
import type { ApolloServerPlugin } from '@apollo/server';
import type { GraphQLContext } from '../resolvers/context.ts';

export const operationLogPlugin: ApolloServerPlugin<GraphQLContext> = {
  async requestDidStart() {
    const started = process.hrtime.bigint();
    return {
      async willSendResponse({ contextValue, operationName, operation, response }) {
        const body = response.body;
        const errors = body.kind === 'single' ? (body.singleResult.errors ?? []) : [];
        contextValue?.log?.info(
          {
            operation: operationName?.slice(0, 64) ?? null,
            type: operation?.operation ?? null,
            ms: Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10,
            errors: errors.map((e) => String(e.extensions?.code ?? 'UNKNOWN')),
          },
          'graphql operation',
        );
      },
    };
  },
};
