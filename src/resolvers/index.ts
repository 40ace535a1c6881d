import { DateTime, JSONScalar } from '../schema/scalars.ts';
import { Mutation } from './mutation.resolvers.ts';
import { Query } from './query.resolvers.ts';
import * as types from './type.resolvers.ts';

export const resolvers = { DateTime, JSON: JSONScalar, Query, Mutation, ...types };
