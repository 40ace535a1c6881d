import { BadInputError } from '../errors.ts';

/** GraphQL IDs are decimal strings of our integer keys. */
export function parseId(id: string | number, what = 'id'): number {
  const s = String(id);
  if (!/^[0-9]{1,10}$/.test(s) || Number(s) > 2_147_483_647) throw new BadInputError(`${what} "${s.slice(0, 40)}" is not an id this service issued`);
  return Number(s);
}

export function optionalId(id: string | number | null | undefined, what?: string): number | null {
  return id == null ? null : parseId(id, what);
}
