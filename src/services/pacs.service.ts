/**
 * The PACS as a source of slices: a nodule named by UIDs and a point is fetched over DICOMweb
 * (src/pacs) and handed on as uploaded DICOM, so that a search or an ingest by PACS nodule runs
 * exactly the checks, decoding, preprocessing and encoding of an inline upload of the same files.
 */
import { BadInputError } from '../errors.ts';
import type { PatientKeyHasher } from '../auth/patient-keys.ts';
import type { DicomwebClient } from '../pacs/dicomweb-client.ts';
import { checkPacsNodule, fetchPacsNodule, type PacsNoduleInput } from '../pacs/pacs-nodule.ts';
import type { IngestCaseInput, IngestService } from './ingest.service.ts';
import type { SliceImageInput } from './slice-input.ts';

export type { PacsNoduleInput };

export interface PacsNoduleFetch {
  images: SliceImageInput[];
  neighbours: { asked: number; before: number; after: number };
  fetchMs: number;
  /** The keyed hash of the instance's PatientID (what importFromPacs stores), null without one: the search excludes that patient. */
  patientKey: string | null;
}

/** What SearchService needs: the slices of a PACS nodule, as uploaded DICOM. */
export type FetchPacsNodule = (nodule: PacsNoduleInput) => Promise<PacsNoduleFetch>;

export interface ImportFromPacsInput extends Omit<IngestCaseInput, 'images' | 'patientKey' | 'studyInstanceUid' | 'seriesInstanceUid'> {
  nodule: PacsNoduleInput;
  patientKey?: string | null;
}

export class PacsService {
  constructor(
    /** Null when no PACS is configured (FCDN_DICOMWEB_URL unset). */
    private readonly pacs: { client: DicomwebClient; patientKeys: PatientKeyHasher } | null,
    private readonly ingest: IngestService,
  ) {}

  get configured(): boolean {
    return this.pacs !== null;
  }

  private pacsOrRefuse(what: string): { client: DicomwebClient; patientKeys: PatientKeyHasher } {
    if (!this.pacs) throw new BadInputError(`${what}: this service has no PACS configured (FCDN_DICOMWEB_URL is not set)`);
    return this.pacs;
  }

  readonly fetchNodule: FetchPacsNodule = async (nodule) => {
    checkPacsNodule(nodule, 'pacs');
    const { client, patientKeys } = this.pacsOrRefuse('pacs');
    const got = await fetchPacsNodule(client, nodule, 'pacs');
    return {
      images: got.images.map((s) => ({ data: '', bytes: s.bytes, offset: s.offset, centerX: s.centerX, centerY: s.centerY })),
      neighbours: got.neighbours,
      fetchMs: got.fetchMs,
      patientKey: got.patientId ? patientKeys.keyOf(got.patientId) : null,
    };
  };

  /**
   * Fetches the nodule's slices and ingests them as a case (all or nothing, idempotent on
   * externalId: IngestService). The patient key is the one given, else a keyed hash of the
   * PACS's PatientID; the PatientID itself goes no further than this function.
   */
  async importFromPacs(input: ImportFromPacsInput): Promise<number> {
    checkPacsNodule(input.nodule, 'nodule');
    const given = input.patientKey?.trim();
    if (input.patientKey != null && !given) throw new BadInputError('patientKey must not be empty (leave it out to derive one from the PACS PatientID)');
    const { client, patientKeys } = this.pacsOrRefuse('importFromPacs');
    const got = await fetchPacsNodule(client, input.nodule, 'nodule');
    let patientKey = given;
    if (!patientKey) {
      if (!got.patientId) throw new BadInputError('nodule: the PACS gives no PatientID for this instance; send a pseudonymous patientKey');
      patientKey = patientKeys.keyOf(got.patientId);
    }
    const { nodule, ...fields } = input;
    return this.ingest.ingestCase({
      ...fields,
      patientKey,
      studyInstanceUid: nodule.studyInstanceUid,
      seriesInstanceUid: nodule.seriesInstanceUid,
      images: got.images.map((s) => ({ data: '', bytes: s.bytes, offset: s.offset, centerX: s.centerX, centerY: s.centerY })),
    });
  }
}
