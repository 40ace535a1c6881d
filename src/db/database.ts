/**
 * Opens the one database the service uses: real Postgres when DATABASE_URL is set, else the
 * embedded PGlite (Postgres in WebAssembly, with pgvector) in the data folder. Both are reached
 * through the same Prisma client, so repositories do not know which one they talk to.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { lockDataDir } from './data-dir-lock.ts';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export type { PrismaClient };
export type DatabaseKind = 'postgres' | 'pglite';

/** Plain SQL access beside Prisma, for the migrator (multi-statement files) and tests. */
export interface RawSql {
  exec(sql: string): Promise<void>;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs fn on one connection inside BEGIN ... COMMIT (ROLLBACK when it throws). */
  transaction<T>(fn: (tx: RawSql) => Promise<T>): Promise<T>;
}

export interface Database {
  kind: DatabaseKind;
  prisma: PrismaClient;
  raw: RawSql;
  /** Called with each SQL statement Prisma sends (tests count them). */
  onQuery(listener: (sql: string) => void): () => void;
  /** Connections of the Postgres pool (GET /metrics); absent on PGlite, which has one in-process connection. */
  poolStats?(): PoolStats;
  close(): Promise<void>;
}

export interface PoolStats {
  total: number;
  idle: number;
  /** Requests queued for a connection because all are in use. */
  waiting: number;
}

export interface DatabaseOptions {
  databaseUrl?: string;
  /** PGlite folder; undefined keeps the database in memory (tests). */
  pgliteDir?: string;
  poolSize?: number;
  /** Postgres only; see PostgresTimeouts. */
  timeouts?: Partial<PostgresTimeouts>;
}

/**
 * Bounds on waiting for Postgres, so that a server that hangs (stopped, not killed; a network
 * that drops packets) fails requests as SERVICE_UNAVAILABLE instead of holding them for as long
 * as TCP takes to give up (many minutes).
 */
export interface PostgresTimeouts {
  /** Getting a connection: opening one, or waiting for a free one in the pool (FCDN_DB_CONNECT_TIMEOUT_MS). */
  connectMs: number;
  /** A connection from which nothing arrives for this long is cut; 0: never (FCDN_DB_SILENCE_TIMEOUT_MS). */
  silenceMs: number;
}

export const DEFAULT_POSTGRES_TIMEOUTS: PostgresTimeouts = { connectMs: 10_000, silenceMs: 60_000 };

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl
    ? openPostgres(options.databaseUrl, options.poolSize ?? 10, { ...DEFAULT_POSTGRES_TIMEOUTS, ...options.timeouts })
    : openPglite(options.pgliteDir);
}

function withQueryEvents(prisma: PrismaClient) {
  const listeners = new Set<(sql: string) => void>();
  prisma.$on('query' as never, ((event: { query: string }) => listeners.forEach((l) => l(event.query))) as never);
  return (listener: (sql: string) => void) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  };
}

/**
 * The socket under each pg connection, with a silence bound that tells a hung server from a
 * long statement (issue 13, item 12). When nothing has arrived for half of `silenceMs`, a fresh
 * connection asks the server whether this connection's backend still exists
 * (pg_stat_activity); the socket is destroyed (ETIMEDOUT) unless that answer arrives within the
 * other half. So a migration, an index build or an analytics query may run for hours while the
 * server answers, and a hung server (stopped, a black-holed network), or a backend that is gone
 * without its FIN reaching us, still fails the request within `silenceMs`. A statement's own
 * duration is bounded server-side (statement_timeout), as the server alone can stop it.
 */
function silenceBoundedSocket(url: string, silenceMs: number, backendOf: WeakMap<net.Socket, pg.Client>): () => net.Socket {
  const half = Math.max(1, Math.floor(silenceMs / 2));
  return () => {
    const socket = new net.Socket();
    let probing = false;
    socket.setTimeout(half);
    socket.on('timeout', () => {
      if (probing || socket.destroyed) return;
      probing = true;
      // processID: the backend's pid from the startup handshake (absent while connecting, and
      // for TLS connections, whose stream is not this socket: then only "the server answers").
      const pid = (backendOf.get(socket) as { processID?: number | null } | undefined)?.processID ?? null;
      void backendAlive(url, pid, half).then((alive) => {
        probing = false;
        if (socket.destroyed) return;
        if (alive) socket.setTimeout(half);
        else socket.destroy(Object.assign(new Error(`the database sent nothing for ${silenceMs} ms and did not answer a liveness check`), { code: 'ETIMEDOUT' }));
      });
    });
    return socket;
  };
}

/**
 * Whether the server answers within `withinMs` and (pid given) that backend still exists. An
 * error the server itself sent (too many connections, a role's connection limit, starting up, a
 * refused login) proves it answers: the silent backend is then given the benefit of the doubt,
 * so a long statement is not cut because the database is at its connection limit. Behind a
 * pooler (PgBouncer) the pid is not a server pid: set FCDN_DB_SILENCE_TIMEOUT_MS=0 there.
 */
async function backendAlive(url: string, pid: number | null, withinMs: number): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: withinMs });
  client.on('error', () => {});
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), withinMs);
  });
  const check = (async () => {
    await client.connect();
    if (pid === null) return true;
    const { rows } = await client.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
    return rows.length === 1;
  })().catch((e: unknown) => e instanceof pg.DatabaseError);
  const alive = await Promise.race([check, deadline]);
  clearTimeout(timer);
  const stream = (client as unknown as { connection: { stream: net.Socket } }).connection.stream;
  // A hung server never answers the terminate message: then the socket is dropped.
  if (alive) setTimeout(() => stream.destroy(), withinMs).unref();
  if (alive) void client.end().catch(() => {});
  else stream.destroy();
  return alive;
}

async function openPostgres(url: string, poolSize: number, timeouts: PostgresTimeouts): Promise<Database> {
  const backendOf = new WeakMap<net.Socket, pg.Client>();
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: timeouts.connectMs,
    // TCP keepalive: a long statement's silent connection is not dropped by a NAT or firewall
    // idle timeout, and a peer that vanished is noticed by the kernel.
    keepAlive: true,
    keepAliveInitialDelayMillis: 30_000,
    ...(timeouts.silenceMs > 0
      ? {
          stream: silenceBoundedSocket(url, timeouts.silenceMs, backendOf),
          // Idle connections are closed by the pool before their silence would be checked.
          idleTimeoutMillis: Math.max(1, Math.min(10_000, Math.floor(timeouts.silenceMs / 3))),
        }
      : {}),
  });
  // A dropped connection (server restart, pg_terminate_backend) must not crash the process: the
  // pool reports idle clients' errors here, and a client checked out (between the statements of a
  // transaction) emits its own, which with no listener would be an uncaught exception. The failing
  // statement still rejects, and the pool discards the dead client when it is released.
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    client.on('error', () => {});
    backendOf.set(client.connection.stream as net.Socket, client);
  });
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { statementNameGenerator: preparedStatementName }), log: [{ emit: 'event', level: 'query' }] });
  return {
    kind: 'postgres',
    prisma,
    raw: pgRawSql(pool),
    onQuery: withQueryEvents(prisma),
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/**
 * Every statement is prepared once per connection under a name derived from its text, so a
 * search is parsed and planned once per connection, not on every click (the Joint-distance
 * SQL's planning is ~0.8 ms, measured on 1M slices). Texts are parameterised and few.
 */
function preparedStatementName(query: { sql: string }): string {
  return `fcdn_${createHash('sha1').update(query.sql).digest('hex').slice(0, 24)}`;
}

async function openPglite(dir: string | undefined): Promise<Database> {
  if (dir) fs.mkdirSync(path.dirname(dir), { recursive: true });
  // One process per folder: a second one stops here with a clear error (./data-dir-lock.ts).
  const lock = dir ? lockDataDir(dir) : null;
  let pglite: PGlite;
  try {
    pglite = await PGlite.create({ dataDir: dir, extensions: { vector } });
  } catch (err) {
    lock?.release();
    throw err;
  }
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite), log: [{ emit: 'event', level: 'query' }] });
  return {
    kind: 'pglite',
    prisma,
    raw: pgliteRawSql(pglite),
    onQuery: withQueryEvents(prisma),
    async close() {
      try {
        await prisma.$disconnect();
        await pglite.close();
      } finally {
        lock?.release();
      }
    },
  };
}

type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

function pgRawSql(pool: pg.Pool, on: Queryable = pool): RawSql {
  return {
    async exec(sql) {
      await on.query(sql);
    },
    async query(sql, params) {
      return (await on.query(sql, params as unknown[])).rows;
    },
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn(pgRawSql(pool, client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
  };
}

type PgliteQueryable = Pick<PGlite, 'exec' | 'query'>;

function pgliteRawSql(pglite: PGlite, on: PgliteQueryable = pglite): RawSql {
  return {
    async exec(sql) {
      await on.exec(sql);
    },
    async query(sql, params) {
      return (await on.query(sql, params as unknown[])).rows as never;
    },
    transaction(fn) {
      return pglite.transaction((tx) => fn(pgliteRawSql(pglite, tx)));
    },
  };
}
