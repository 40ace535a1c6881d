/**
 * Validation rules that refuse expensive operations before they run: a depth limit and a cost
 * limit. Cost counts every selected field once, multiplied by the sizes of the lists above it
 * (the `first` or `k` argument where given, else LIST_DEFAULT); aliases count like fields, so
 * alias flooding is refused too. A search scans the archive, so each `similarCases` counts
 * SEARCH_COST on top, and an operation may use at most MAX_ALIASES aliases: ten thousand
 * aliases of a cheap field were measured to hold the server for 40 s (docs/reliability.md).
 * The parser itself stops at MAX_TOKENS (src/http/graphql.ts), before any of this runs.
 */
import {
  GraphQLError,
  getNamedType,
  isListType,
  isNonNullType,
  Kind,
  type ASTVisitor,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLInputType,
  type GraphQLOutputType,
  type SelectionSetNode,
  type ValidationContext,
  type ValueNode,
} from 'graphql';

export const MAX_DEPTH = 10;
export const MAX_COST = 100_000;
export const MAX_ALIASES = 100;
export const MAX_TOKENS = 5_000;
export const SEARCH_COST = 10_000;
const LIST_DEFAULT = 10;

function limitError(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
}

function isList(type: GraphQLOutputType | GraphQLInputType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}

function intValue(node: ValueNode | undefined, variables: Record<string, unknown>): number | undefined {
  if (!node) return undefined;
  if (node.kind === Kind.INT) return Number(node.value);
  if (node.kind === Kind.VARIABLE) {
    const v = variables[node.name.value];
    return typeof v === 'number' ? v : undefined;
  }
  return undefined;
}

/** The list size a field asks for with `first`, `k` or `input: { k }`; undefined when it names none. */
function requestedSize(field: FieldNode, variables: Record<string, unknown>): number | undefined {
  for (const arg of field.arguments ?? []) {
    if (arg.name.value === 'first' || arg.name.value === 'k') return intValue(arg.value, variables) ?? LIST_DEFAULT;
    if (arg.name.value === 'input') {
      const input = arg.value;
      if (input.kind === Kind.OBJECT) {
        const k = input.fields.find((f) => f.name.value === 'k');
        return k ? (intValue(k.value, variables) ?? LIST_DEFAULT) : undefined;
      }
      if (input.kind === Kind.VARIABLE) {
        const v = variables[input.name.value] as { k?: unknown } | undefined;
        return typeof v?.k === 'number' ? v.k : undefined;
      }
    }
  }
  return undefined;
}

export function operationLimits(variables: Record<string, unknown> = {}) {
  return (context: ValidationContext): ASTVisitor => {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const def of context.getDocument().definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
    // A fragment's cost depends only on the list size passed into it: remembering it keeps a
    // fragment spread twice in each of forty fragments (2^40 paths) a linear walk.
    const fragmentMemo = new Map<string, [number, number]>();

    // Walks selections with the schema's types; returns [cost, depth]. A size asked for by a
    // field (cases(first), similarCases(k)) applies to the first list below it (edges, hits).
    const measure = (set: SelectionSetNode, parentType: ReturnType<typeof getNamedType>, seen: Set<string>, pendingSize?: number): [number, number] => {
      let cost = 0;
      let depth = 0;
      for (const sel of set.selections) {
        if (sel.kind === Kind.FIELD) {
          const fields = parentType && 'getFields' in parentType ? parentType.getFields() : {};
          const def = fields[sel.name.value];
          let fieldCost = 1;
          let fieldDepth = 1;
          if (sel.selectionSet && def) {
            const asked = requestedSize(sel, variables) ?? pendingSize;
            const list = isList(def.type);
            const [c, d] = measure(sel.selectionSet, getNamedType(def.type), seen, list ? undefined : asked);
            fieldCost += (list ? (asked ?? LIST_DEFAULT) : 1) * c;
            fieldDepth += d;
          }
          if (sel.name.value === 'similarCases') fieldCost += SEARCH_COST;
          cost += fieldCost;
          depth = Math.max(depth, fieldDepth);
        } else {
          const fragment = sel.kind === Kind.INLINE_FRAGMENT ? sel : fragments.get(sel.name.value);
          if (!fragment || (sel.kind === Kind.FRAGMENT_SPREAD && seen.has(sel.name.value))) continue;
          const next = sel.kind === Kind.FRAGMENT_SPREAD ? new Set([...seen, sel.name.value]) : seen;
          const type = fragment.typeCondition ? context.getSchema().getType(fragment.typeCondition.name.value) : parentType;
          const memoKey = sel.kind === Kind.FRAGMENT_SPREAD ? `${sel.name.value}|${pendingSize}` : undefined;
          const known = memoKey ? fragmentMemo.get(memoKey) : undefined;
          const [c, d] = known ?? measure(fragment.selectionSet, type as ReturnType<typeof getNamedType>, next, pendingSize);
          if (memoKey && !known) fragmentMemo.set(memoKey, [c, d]);
          cost += c;
          depth = Math.max(depth, d);
        }
        if (cost > MAX_COST * 10) break; // already far over; stop walking a hostile document
      }
      return [cost, depth];
    };

    let aliases = 0;
    return {
      Field(node) {
        if (node.alias) aliases++;
      },
      Document: {
        leave() {
          if (aliases > MAX_ALIASES) context.reportError(limitError(`the operation uses ${aliases} aliases; at most ${MAX_ALIASES} are allowed`));
        },
      },
      OperationDefinition(node) {
        const root = node.operation === 'mutation' ? context.getSchema().getMutationType() : node.operation === 'subscription' ? null : context.getSchema().getQueryType();
        const [cost, depth] = measure(node.selectionSet, root ?? undefined, new Set());
        if (depth > MAX_DEPTH) context.reportError(limitError(`the operation is ${depth} levels deep; at most ${MAX_DEPTH} are allowed`));
        if (cost > MAX_COST) context.reportError(limitError(`the operation would cost ${cost} (fields times list sizes); at most ${MAX_COST} is allowed`));
      },
    };
  };
}
