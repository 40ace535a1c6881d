/**
 * Display renditions of stored slices and query slices (the imaging itself: src/imaging/display.ts).
 * The /images route and the GraphQL previews call this; neither renders anything itself.
 */
import { NotFoundError } from '../errors.ts';
import { displayDataUrl, displayPng, type DisplayWindowName } from '../imaging/display.ts';
import type { Repositories } from '../repositories/index.ts';
import type { ObjectStore } from '../storage/object-store.ts';

/** A query slice of an image search: its offset and the PNG prepareSlice made of it (the patch the model saw). */
export interface QuerySliceImage {
  offset: number;
  storedPng: Buffer;
}

export class DisplayImageService {
  constructor(
    private readonly repos: Repositories,
    private readonly store: ObjectStore,
  ) {}

  /** The stored slice's PNG as it was stored (16-bit HU + 32768, or 8-bit), or its 8-bit rendition in a window. */
  async slicePng(sliceId: number, window: DisplayWindowName | null): Promise<Buffer> {
    // An image read may be served by a read node (FCDN_READ_DATABASE_URL).
    const slice = await this.repos.reads().run((r) => r.slices.findById(sliceId));
    if (!slice) throw new NotFoundError('no such slice');
    const png = await this.store.get(slice.imageKey);
    return window == null ? png : displayPng(png, window);
  }

  /** Previews of an image query's slices in offset order, as data: URLs (8-bit PNG in the window). */
  queryPreviews(slices: readonly QuerySliceImage[], window: DisplayWindowName): { offset: number; imageUrl: string }[] {
    return [...slices].sort((a, b) => a.offset - b.offset).map((s) => ({ offset: s.offset, imageUrl: displayDataUrl(s.storedPng, window) }));
  }
}
