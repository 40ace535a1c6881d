/**
 * The model registry: which ONNX models are known, which one is active, and their loaded
 * encoders. Search and ingest always use the active model; codes of different models are never
 * compared because every code row carries its model id.
 */
import type { ModelVersion } from '../repositories/records.ts';
import { BadInputError, NotFoundError } from '../errors.ts';
import type { Repositories, Transaction } from '../repositories/index.ts';
import type { LoadEncoder, SliceEncoder } from './ports.ts';

export interface ActiveModel {
  version: ModelVersion;
  encoder: SliceEncoder;
}

/**
 * A model switch waits for the ingests in flight to commit (lockForSwitch); an ingest transaction
 * may take up to its own 60 s, so the switch gets as long, not Prisma's default 5 s.
 */
export const SWITCH_TRANSACTION = { timeout: 60_000, maxWait: 30_000, retryOnDeadlock: true } as const;

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
    if (!(await this.repos.models.findActive())) return this.repos.transaction((tx) => this.repos.models.activate(tx, version.id));
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
    const missingCodes = () => new BadInputError(`model ${id} (${version.name}) has no codes for some stored slices; run reindex(modelId: ${id}), which activates it when it has finished`);
    if (!version.active) {
      // Refused early, before its search blocks are built for nothing; checked again under the locks.
      if ((await this.repos.codes.slicesWithoutCodes(id, 1)).length > 0) throw missingCodes();
      await this.prepareBlocks(id);
    }
    // The check and the switch in one transaction, after the switch's locks (issue 13, item 1): an
    // ingest in flight under the old model commits first and is then counted as missing codes.
    const activated = await this.repos.transaction(async (tx) => {
      const retiring = await this.repos.models.lockForSwitch(tx);
      if ((await this.repos.codes.slicesWithoutCodes(id, 1, tx)).length > 0) return null;
      return this.switchWithin(tx, id, retiring);
    }, SWITCH_TRANSACTION);
    if (!activated) {
      if (!version.active) await this.repos.search.blocks.drop(id);
      throw missingCodes();
    }
    return activated;
  }

  /**
   * Before a switch to a model: its search blocks, so searches right after the switch use them
   * instead of the plain SQL (issue 13, item 10). A failure is logged, not the switch's: searches
   * stay exact without blocks, and the upkeep loop builds them after the first search.
   */
  async prepareBlocks(id: number): Promise<void> {
    await this.repos.search.prepareBlocksFor(id);
  }

  /**
   * The switch, inside the caller's transaction after ModelRepository.lockForSwitch (which returned
   * `retiring`, the model active until now): the model goes live, and the retired model's search
   * blocks and dirty marks go with it, so its triggers stop recording (issue 13, item 10).
   */
  async switchWithin(tx: Transaction, id: number, retiring: number | null): Promise<ModelVersion> {
    const activated = await this.repos.models.activate(tx, id);
    if (retiring != null && retiring !== id) await this.repos.search.blocks.drop(retiring, tx);
    return activated;
  }
}
