/**
 * Runs `src/main.ts` as a real child process (for tests that kill and restart the service).
 * The test talks to it over HTTP only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { KEYS, TEST_URL_SECRET, type GraphQLResponse } from './test-service.ts';
import type { Role } from '../../src/config.ts';

export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  logs: string[];
  gql<T = any>(query: string, variables?: Record<string, unknown>, role?: Role): Promise<GraphQLResponse<T>>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function startServiceProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('src/main.ts')], {
    env: { ...process.env, PORT: '0', FCDN_EXECUTION_PROVIDER: 'cpu', LOG_LEVEL: 'info', FCDN_API_KEYS: Object.entries(KEYS).map(([r, k]) => `${r}:${k}`).join(','), FCDN_URL_SECRET: TEST_URL_SECRET, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not start in ${timeoutMs} ms:\n${logs.join('')}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      logs.push(chunk.toString());
      const m = /"port":(\d+)[^\n]*listening/.exec(chunk.toString());
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code} before listening:\n${logs.join('')}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    child,
    logs,
    async gql(query, variables, role = 'admin') {
      const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS[role]}` }, body: JSON.stringify({ query, variables }) });
      return { ...((await res.json()) as GraphQLResponse), status: res.status };
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null) child.kill(signal);
      await exited;
    },
  };
}
