/**
 * Everything the service knows about Postgres errors, in one place: which SQLSTATE an error
 * carries (through Prisma, its pg adapter and pg), whether the database went away (server
 * restarted, backend terminated, connection refused: the API answers SERVICE_UNAVAILABLE instead
 * of an internal error; the pg Pool itself drops such dead clients), and the two retries built on
 * them (reads after a lost connection, all-or-nothing transactions after a deadlock).
 */

/** The SQLSTATE an error carries (its own code, its cause's, or named in its message), if any. */
export function sqlState(err: unknown): string | undefined {
  for (let e: any = err, depth = 0; e && depth < 6; e = e.cause ?? e.meta?.driverAdapterError, depth++) {
    const code = e.originalCode ?? e.code ?? e.meta?.code ?? e.cause?.originalCode;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  const m = /(?:SQLSTATE|Code:)[: `]+([0-9A-Z]{5})|\b(40001|40P01)\b/.exec(String((err as Error)?.message ?? ''));
  return m?.[1] ?? m?.[2];
}

/** The error carries this SQLSTATE (or, where the driver loses the code, its message contains messageHint). */
export function isSqlState(err: unknown, state: string, messageHint?: string): boolean {
  if (sqlState(err) === state) return true;
  return messageHint != null && String((err as Error)?.message ?? '').includes(messageHint);
}

/** SQLSTATE classes/codes of a lost or refused connection: 08xxx, admin/crash shutdown, starting up. */
const SQLSTATES = /^(08...|57P01|57P02|57P03)$/;
const PRISMA_CODES = new Set(['P1001', 'P1002', 'P1017']);
const ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TlsConnectionError']);
const NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);
const MESSAGES = /Connection terminated|timeout exceeded when trying to connect|connection error and is not queryable|Can't reach database server|terminating connection|the database system is (starting up|shutting down)/i;

export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err as Record<string, any> | undefined, depth = 0; e && depth < 6; e = e.cause, depth++) {
    if (PRISMA_CODES.has(e.code) || NODE_CODES.has(e.code) || (typeof e.code === 'string' && SQLSTATES.test(e.code))) return true;
    const adapter = e.meta?.driverAdapterError?.cause ?? (e.name === 'DriverAdapterError' ? e.cause : undefined);
    if (adapter && (ADAPTER_KINDS.has(adapter.kind) || SQLSTATES.test(String(adapter.originalCode ?? adapter.code ?? '')))) return true;
    if (typeof e.message === 'string' && MESSAGES.test(e.message)) return true;
  }
  return false;
}

/**
 * Runs a read-only operation again when the connection died under it: the pool has dropped the
 * dead client by then, so a terminated backend costs the caller nothing. Never for writes (a
 * COMMIT whose answer was lost may have happened).
 */
export async function retryReadOnDisconnect<T>(read: () => Promise<T>, retries = 2, delayMs = 100): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await read();
    } catch (err) {
      if (attempt >= retries || !isDatabaseUnavailable(err)) throw err;
      await new Promise((r) => setTimeout(r, delayMs * (attempt + 1)));
    }
  }
}

/**
 * A transaction the database aborted to break a deadlock (40P01) or a serialization conflict
 * (40001); Prisma reports both as P2034 ("write conflict or a deadlock"). Running the whole
 * transaction again is safe where it is all or nothing (issue 13, item 2).
 */
export function isDeadlockOrConflict(err: unknown): boolean {
  for (let e = err as Record<string, any> | undefined, depth = 0; e && depth < 6; e = e.cause, depth++) {
    if (e.code === 'P2034' || e.code === '40P01' || e.code === '40001') return true;
    const code = String(e.meta?.code ?? e.meta?.driverAdapterError?.cause?.originalCode ?? '');
    if (code === '40P01' || code === '40001') return true;
  }
  return false;
}

/** Runs an all-or-nothing transaction again (up to `retries` times) when the database aborted it for a deadlock. */
export async function retryOnDeadlock<T>(transaction: () => Promise<T>, retries = 3, delayMs = 50): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await transaction();
    } catch (err) {
      if (attempt >= retries || !isDeadlockOrConflict(err)) throw err;
      await new Promise((r) => setTimeout(r, delayMs * (attempt + 1) * (0.5 + Math.random())));
    }
  }
}
