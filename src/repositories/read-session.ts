/**
 * Where reads run (FCDN_READ_DATABASE_URL, docs/scaling.md). A ReadSession is one unit of
 * read-only work (a search, a GraphQL request's loaders, an image): it takes a node at its first
 * read (a streaming replica that is up, in turn, else the primary) and keeps it, so that what one
 * answer shows comes from one node, whose replay only moves forward. `snapshot` runs a step in
 * one REPEATABLE READ transaction there: the active model row, the codes and the ranking a search
 * reads are then one point of that node's history, so a lagging replica answers as the primary
 * did at that point and never with a model it has not fully replayed.
 *
 * A replica whose connection is lost or refused is marked down (ReadNodes: metric and log by the
 * composition root, probed until it answers) and the step runs again on the primary; so does a
 * step the replica cancelled for a recovery conflict. Only reads come here: writes, reindex and
 * block rebuilds use the primary's repositories.
 */
import type { ReadNode, ReadNodes } from '../db/read-nodes.ts';
import { isDatabaseUnavailable, isDeadlockOrConflict, retryReadOnDisconnect } from '../db/postgres-errors.ts';
import { Prisma } from '../generated/prisma/client.ts';
import { CaseRepository } from './case.repository.ts';
import { CodeRepository } from './code.repository.ts';
import type { PrismaClient } from './executor.ts';
import { ModelRepository } from './model.repository.ts';
import { ReportRepository } from './report.repository.ts';
import type { SearchRepository } from './search.repository.ts';
import { SliceRepository } from './slice.repository.ts';

/** The repositories a read may use, bound to one node (or to one snapshot on it). */
export interface ReadRepositories {
  cases: CaseRepository;
  slices: SliceRepository;
  codes: CodeRepository;
  reports: ReportRepository;
  models: ModelRepository;
  search: SearchRepository;
}

export type ReadStep<T> = (r: ReadRepositories) => Promise<T>;

/**
 * timeout: a search on 1M slices by plain SQL (blocks not built yet) takes seconds; Prisma's 5 s
 * default is too short under load. maxWait: longer than the pool's own connect bound
 * (FCDN_DB_CONNECT_TIMEOUT_MS), whose error says "the database is unreachable" (SERVICE_UNAVAILABLE).
 */
const SNAPSHOT = { isolationLevel: Prisma.TransactionIsolationLevel.RepeatableRead, maxWait: 60_000, timeout: 120_000 };

export function readRepositories(prisma: PrismaClient, search: SearchRepository, where: { inTransaction?: boolean; replica?: boolean } = {}): ReadRepositories {
  return {
    cases: new CaseRepository(prisma),
    slices: new SliceRepository(prisma),
    codes: new CodeRepository(prisma),
    reports: new ReportRepository(prisma),
    models: new ModelRepository(prisma),
    search: search.on(prisma, where),
  };
}

export class ReadSession {
  private node: ReadNode | null;
  private readonly bound = new Map<ReadNode, ReadRepositories>();

  constructor(
    private readonly nodes: ReadNodes,
    /** The primary's search repository: its settings and block upkeep serve every node. */
    private readonly search: SearchRepository,
    /** Start on the primary (a mutation reads back its own writes). */
    onPrimary = false,
  ) {
    this.node = onPrimary ? nodes.primary : null;
  }

  /** Runs a read step on this session's node. */
  run<T>(step: ReadStep<T>): Promise<T> {
    return this.onNode((node) => step(this.repositories(node)));
  }

  /** Runs a read step in one REPEATABLE READ snapshot on this session's node. */
  snapshot<T>(step: ReadStep<T>): Promise<T> {
    return this.onNode((node) =>
      node.db.prisma.$transaction((tx) => step(readRepositories(tx as unknown as PrismaClient, this.search, { inTransaction: true, replica: node !== this.nodes.primary })), SNAPSHOT),
    );
  }

  private async onNode<T>(work: (node: ReadNode) => Promise<T>): Promise<T> {
    const node = (this.node ??= this.nodes.pick());
    this.nodes.served(node);
    if (node === this.nodes.primary) return retryReadOnDisconnect(() => work(node));
    try {
      return await work(node);
    } catch (err) {
      const lost = isDatabaseUnavailable(err);
      // 40001 (or 40P01) on a standby: the query was cancelled for a conflict with recovery
      // (replay had to remove rows it could still see); the primary answers it.
      if (!lost && !isDeadlockOrConflict(err)) throw err;
      if (lost) this.nodes.markDown(node, err);
      this.node = this.nodes.primary;
      this.nodes.served(this.node);
      return retryReadOnDisconnect(() => work(this.nodes.primary));
    }
  }

  private repositories(node: ReadNode): ReadRepositories {
    let r = this.bound.get(node);
    if (!r) this.bound.set(node, (r = readRepositories(node.db.prisma, this.search, { replica: node !== this.nodes.primary })));
    return r;
  }
}
