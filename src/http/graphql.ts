/**
 * Apollo Server on /graphql: the schema, our operation limits, and error formatting that gives
 * every error an extensions.code and never leaks internals.
 */
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import { GraphQLError, Kind, validate, visit, type DocumentNode, type GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import type { GraphQLContext } from '../resolvers/context.ts';
import { resolvers } from '../resolvers/index.ts';
import { typeDefs } from '../schema/index.ts';
import { MAX_TOKENS, operationLimits } from '../schema/limits.ts';
import { errorAnswer } from './error-status.ts';
import type { Metrics } from './metrics.ts';
import { operationLogPlugin } from './operation-log.ts';
import { currentLog } from './request-id.ts';

/** Postgres text cannot hold NUL: refuse it here, for every argument, rather than fail in SQL. */
function containsNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 64 || value === null || typeof value !== 'object') return false;
  return Object.entries(value).some(([k, v]) => k.includes('\u0000') || containsNul(v, depth + 1));
}

function documentContainsNul(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    [Kind.STRING]: (node) => {
      if (node.value.includes('\u0000')) found = true;
    },
  });
  return found;
}

/** Depth and cost need the request's variables (list sizes), so they run once the operation is known. */
const limitsPlugin: ApolloServerPlugin<GraphQLContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ document, request, schema }) {
        const errors = validate(schema, document, [operationLimits(request.variables ?? {})]);
        if (errors.length > 0) throw errors[0];
        if (containsNul(request.variables) || documentContainsNul(document)) {
          throw new GraphQLError('text arguments must not contain NUL characters (\\u0000)', { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
        }
      },
    };
  },
};

/** A mutation's answer is read on the primary, where its writes are (read nodes replay them later). */
const readYourWritesPlugin: ApolloServerPlugin<GraphQLContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ operation, contextValue }) {
        if (operation?.operation === 'mutation') contextValue.loaders.usePrimary();
      },
    };
  },
};

export function createApolloServer(log: Logger, metrics: Metrics, introspection: boolean) {
  return new ApolloServer<GraphQLContext>({
    typeDefs,
    resolvers: resolvers as never,
    introspection,
    // Refuse token floods (aliases, directives, nesting) in the parser, before validation runs.
    parseOptions: { maxTokens: MAX_TOKENS },
    plugins: [limitsPlugin, readYourWritesPlugin, operationLogPlugin],
    includeStacktraceInErrorResponses: false,
    // src/main.ts owns SIGTERM/SIGINT (ordered close, FCDN_SHUTDOWN_TIMEOUT_MS). Apollo's own handler
    // would stop this server and re-raise the signal, killing the process mid-close.
    stopOnTerminationSignals: false,
    formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
      const original = unwrapResolverError(error);
      let result = formatted;
      // GraphQL's own errors (validation, limits, variable coercion) keep their code and message.
      const answer = original instanceof GraphQLError ? null : errorAnswer(original);
      if (answer && answer.source !== 'internal') {
        if (answer.source === 'database') currentLog(log).warn({ err: original, path: formatted.path }, 'database unreachable');
        result = { ...formatted, message: answer.message, extensions: { code: answer.code } };
      } else if (answer && formatted.extensions?.code === 'INTERNAL_SERVER_ERROR') {
        currentLog(log).error({ err: original, path: formatted.path }, 'unexpected error in a resolver');
        result = { ...formatted, message: answer.message, extensions: { code: answer.code } };
      }
      metrics.graphqlErrors.inc({ code: String(result.extensions?.code ?? 'UNKNOWN') });
      return result;
    },
  });
}
