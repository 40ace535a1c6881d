/**
 * The model registry: which ONNX models are known, which one is active, and their loaded
 * encoders. Search and ingest always use the active model; codes of different models are never
 * compared because every code row carries its model id.
 */
import type { ModelVersion } from '../generated/prisma/client.ts';
import { BadInputError, NotFoundError } from '../errors.ts';
import type { Repositories } from '../repositories/index.ts';
import type { LoadEncoder, SliceEncoder } from './ports.ts';

export interface ActiveModel {
  version: ModelVersion;
  encoder: SliceEncoder;
}

export class ModelService {
  private readonly encoders = new Map<number, Promise<SliceEncoder>>();

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
    if (!(await this.repos.models.findActive())) return this.repos.models.activate(this.repos.prisma, version.id);
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
      encoder.catch(() => this.encoders.delete(version.id));
    }
    return encoder;
  }

  /**
   * Switches search and ingest to a model. Only a model that has codes for every stored slice can
   * be activated (otherwise cases would silently drop out of search): reindex first, which
   * activates the model itself when it has finished.
   */
  async activate(id: number): Promise<ModelVersion> {
    const version = await this.get(id);
    await this.encoder(version); // refuse a model whose file cannot be loaded
    const missing = await this.repos.codes.slicesWithoutCodes(this.repos.prisma, id, 1);
    if (missing.length > 0) {
      throw new BadInputError(`model ${id} (${version.name}) has no codes for some stored slices; run reindex(modelId: ${id}), which activates it when it has finished`);
    }
    return this.repos.models.activate(this.repos.prisma, id);
  }
}
