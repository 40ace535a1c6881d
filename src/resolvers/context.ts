/** What every resolver receives: the caller (checked lazily), the services and this request's loaders. */
import type { ApiKeyRing, Caller, Role } from '../auth/api-keys.ts';
import { requireRole } from '../auth/api-keys.ts';
import type { ImageUrlSigner } from '../auth/image-urls.ts';
import type { Logger } from 'pino';
import type { Services } from '../services/index.ts';
import type { Loaders } from '../services/loaders.ts';

export interface GraphQLContext {
  services: Services;
  loaders: Loaders;
  /** Throws UNAUTHENTICATED / FORBIDDEN unless the caller's key has at least this role. */
  require(role: Role): Caller;
  imageUrl(sliceId: number): string;
  /** This service's public base URL (FCDN_PUBLIC_URL, else from the request's Host). */
  baseUrl: string;
  /** This request's logger: every line carries its reqId (x-request-id). */
  log: Logger;
}

export function createContext(services: Services, loaders: Loaders, keys: ApiKeyRing, signer: ImageUrlSigner, authorization: string | undefined, baseUrl: string, log: Logger): GraphQLContext {
  let caller: Caller | undefined;
  return {
    services,
    loaders,
    require(role) {
      caller ??= keys.authenticate(authorization);
      requireRole(caller, role);
      return caller;
    },
    imageUrl: (sliceId) => `${baseUrl}${signer.path(sliceId)}`,
    baseUrl,
    log,
  };
}
