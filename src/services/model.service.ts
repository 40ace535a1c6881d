/**
 * The model registry: which ONNX models are known, which one is active, and their loaded
 * encoders. Search and ingest always use the active model; codes of different models are never
 * compared because every code row carries its model id.
 */
import type { ModelVersion } from '../generated/prisma/client.ts';
import { BadInputError, NotFoundError } from '../errors.ts';
import { retryOnDeadlock } from '../db/connection-errors.ts';
import type { Repositories } from '../repositories/index.ts';
import type { LoadEncoder, SliceEncoder } from './ports.ts';

export interface ActiveModel {
  version: ModelVersion;
  encoder: SliceEncoder;
}

/**
 * A model switch waits for the ingests in flight to commit (lockForSwitch); an ingest transaction
 * may take up to its own 60 s, so the switch gets as long, not Prisma's default 5 s.
 */
export const SWITCH_TRANSACTION = { timeout: 60_000, maxWait: 30_000 } as const;

export class ModelService {
  private readonly encoders = new Map<number, Promise<SliceEncoder>>();
  /** Models whose last load failed (kept until a later load succeeds). */
  private readonly loadFailed = new Set<number>();

  constructor(
    private readonly repos: Repositories,
    private readonly loadEncoder: LoadEncoder,
  ) {}

  /**
   * Registers a model file (idempotent by content hash). The first model registered becomes
   * active; a later one waits for an admin's reindex, which activates it when it has finished.
   */
  async register(modelPath: string): Promise<ModelVersion> {
    const encoder = await this.loadEncoder(modelPath);
    const version = await this.repos.models.register({
      name: encoder.card.name,
      sha256: encoder.sha256,
      bits: encoder.card.bits,
      filePath: modelPath,
      card: encoder.card as never,
      metrics: (encoder.card.metrics ?? undefined) as never,
    });
    this.encoders.set(version.id, Promise.resolve(encoder));
    // The first model: deactivate-then-activate in one transaction, so no crash leaves none active.
    if (!(await this.repos.models.findActive())) return this.repos.prisma.$transaction((tx) => this.repos.models.activate(tx, version.id));
    return version;
  }

  async list(): Promise<ModelVersion[]> {
    return this.repos.models.all();
  }

  async get(id: number): Promise<ModelVersion> {
    const [version] = await this.repos.models.findByIds([id]);
    if (!version) throw new NotFoundError(`no model version with id ${id}`);
    return version;
  }

  async active(): Promise<ActiveModel> {
    const version = await this.repos.models.findActive();
    if (!version) throw new Error('no active model: the service registers one at start');
    return { version, encoder: await this.encoder(version) };
  }

  async encoder(version: ModelVersion): Promise<SliceEncoder> {
    let encoder = this.encoders.get(version.id);
    if (!encoder) {
      encoder = this.loadEncoder(version.filePath);
      this.encoders.set(version.id, encoder);
      encoder.then(
        () => this.loadFailed.delete(version.id),
        () => {
          this.encoders.delete(version.id);
          this.loadFailed.add(version.id);
        },
      );
    }
    return encoder;
  }

  /**
   * For listings (`ModelVersion.executionProvider`, role reader): the provider of a loaded model,
   * 'unavailable' when its last load failed, 'not loaded' when nothing has needed it yet. Loads
   * no model but the active one (which search and ingest need anyway), and never retries a failed
   * load (issue 13, item 11): other loads happen for reindex, activation and registration.
   */
  async executionProvider(version: ModelVersion): Promise<string> {
    const loading = this.encoders.get(version.id) ?? (version.active && !this.loadFailed.has(version.id) ? this.encoder(version) : undefined);
    if (loading) return loading.then((e) => e.executionProvider, () => 'unavailable');
    return this.loadFailed.has(version.id) ? 'unavailable' : 'not loaded';
  }

  /**
   * Switches search and ingest to a model. Only a model that has codes for every stored slice can
   * be activated (otherwise cases would silently drop out of search): reindex first, which
   * activates the model itself when it has finished.
   */
  async activate(id: number): Promise<ModelVersion> {
    const version = await this.get(id);
    await this.encoder(version); // refuse a model whose file cannot be loaded
    // The check and the switch in one transaction, after the switch's locks (issue 13, item 1): an
    // ingest in flight under the old model commits first and is then counted as missing codes.
    const activated = await retryOnDeadlock(() =>
      this.repos.prisma.$transaction(async (tx) => {
        await this.repos.models.lockForSwitch(tx);
        if ((await this.repos.codes.slicesWithoutCodes(tx, id, 1)).length > 0) return null;
        return this.repos.models.activate(tx, id);
      }, SWITCH_TRANSACTION),
    );
    if (!activated) {
      throw new BadInputError(`model ${id} (${version.name}) has no codes for some stored slices; run reindex(modelId: ${id}), which activates it when it has finished`);
    }
    return activated;
  }
}
