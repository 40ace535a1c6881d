/**
 * A throwaway PostgreSQL cluster for tests that stop and start the server (the machine's shared
 * server on 5432 must never be restarted under other tests): initdb into a temp folder, pg_ctl on
 * a free loopback port, trust auth. pgvector and fcdn_search are installed machine-wide for this
 * major version, so the service's migrations find them here as on the shared server.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, postgresBinDir } from '../../fixtures/local-servers.ts';

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** pg_ctl stop -m fast (asynchronous, so the service in this process keeps running meanwhile). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /**
   * SIGSTOP to the postmaster and every backend: the server hangs without closing anything (the
   * kernel still accepts connections), as a frozen VM or a black-holed network looks to a client.
   */
  freeze(): void;
  /** SIGCONT to the same processes and any the postmaster has since forked. */
  thaw(): void;
  /** Stops the server and removes its folder. */
  destroy(): void;
}



export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcdn-pg-'));
  const data = path.join(dir, 'data');
  const port = await freePort();
  // initdb refuses to run as root; CI runs as root, so the cluster belongs to the postgres user.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) execFileSync('chown', ['postgres:', dir]);
  const command = (tool: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]] : [path.join(bin, tool), args];
  const run = (tool: string, args: string[]) => execFileSync(...command(tool, args), { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  const runAsync = async (tool: string, args: string[]) => {
    await promisify(execFile)(...command(tool, args), { timeout: 120_000 });
  };
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
  const ctl = (...args: string[]) => ['-D', data, '-l', path.join(dir, 'server.log'), '-w', '-t', '60', ...args];
  run('pg_ctl', ctl('-o', options, 'start'));
  let running = true;
  const clusterPids = (): number[] => {
    const postmaster = Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(postmaster)], { encoding: 'utf8' }).split('\n').map(Number).filter((p) => p > 0);
    return [postmaster, ...children];
  };
  let frozen: number[] = [];
  const thaw = () => {
    for (const pid of new Set([...frozen, ...clusterPids()])) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* exited meanwhile */
      }
    }
    frozen = [];
  };
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      await runAsync('pg_ctl', ctl('-m', 'fast', 'stop'));
      running = false;
    },
    async start() {
      await runAsync('pg_ctl', ctl('-o', options, 'start'));
      running = true;
    },
    freeze() {
      frozen = clusterPids();
      for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    },
    thaw,
    destroy() {
      if (frozen.length) thaw();
      if (running) {
        try {
          run('pg_ctl', ctl('-m', 'immediate', 'stop'));
        } catch {
          /* already gone */
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
