/**
 * The database nodes reads may go to (FCDN_READ_DATABASE_URL: streaming replicas of the primary,
 * docs/scaling.md): the replicas that answer, in turn, else the primary. A replica whose
 * connection is lost or refused is left out (onDown) and probed every `probeEveryMs` until it
 * answers again (onUp); meanwhile its reads go to the primary. Which reads may go here, and in
 * what snapshot, is the repository layer's choice (src/repositories/read-session.ts).
 */
import type { Database } from './database.ts';

export interface ReadNode {
  /** `primary`, or a replica's host:port/database (no credentials): the `node` label of the metrics and logs. */
  name: string;
  db: Pick<Database, 'prisma' | 'raw'> & Partial<Pick<Database, 'close'>>;
}

export interface ReadNodeOptions {
  /** How often a replica that went away is asked `SELECT 1` until it answers. */
  probeEveryMs: number;
  onDown?(node: string, err: unknown): void;
  onUp?(node: string): void;
  /** A step of reads ran on this node (`primary` included). */
  onRead?(node: string): void;
}

/** A replica's name for logs and metrics: its URL without user, password or query. */
export function readNodeName(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return 'replica';
  }
}

export class ReadNodes {
  private turn = 0;
  /** Replicas left out, each with its probe timer. */
  private readonly down = new Map<string, NodeJS.Timeout>();

  constructor(
    readonly primary: ReadNode,
    readonly replicas: readonly ReadNode[],
    private readonly o: ReadNodeOptions,
  ) {}

  /** The node for the next unit of reads: the next replica that is up, else the primary. */
  pick(): ReadNode {
    const up = this.replicas.filter((n) => !this.down.has(n.name));
    if (up.length === 0) return this.primary;
    return up[this.turn++ % up.length]!;
  }

  /** Counts a step of reads run on this node. */
  served(node: ReadNode): void {
    this.o.onRead?.(node.name);
  }

  /** A replica lost or refused its connection: leave it out until a probe gets an answer. */
  markDown(node: ReadNode, err: unknown): void {
    if (node === this.primary || this.down.has(node.name)) return;
    let probing = false;
    const timer = setInterval(() => {
      if (probing) return;
      probing = true;
      node.db.raw
        .query('SELECT 1')
        .then(() => {
          if (!this.down.has(node.name)) return;
          clearInterval(this.down.get(node.name));
          this.down.delete(node.name);
          this.o.onUp?.(node.name);
        })
        .catch(() => {})
        .finally(() => (probing = false));
    }, this.o.probeEveryMs);
    timer.unref();
    this.down.set(node.name, timer);
    this.o.onDown?.(node.name, err);
  }

  /** Stops the probes and closes the replicas' pools (the primary is closed by its owner). */
  async close(): Promise<void> {
    for (const timer of this.down.values()) clearInterval(timer);
    this.down.clear();
    await Promise.all(this.replicas.map((n) => n.db.close?.().catch(() => {})));
  }
}
