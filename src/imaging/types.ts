/** Contracts of the imaging layer: a slice as it comes in, and as it leaves prepared for the model and storage. */

/** One uploaded slice as the API receives it (bytes already base64-decoded). */
export interface SliceImage {
  data: Buffer;
  /** Position relative to the nodule centre; 0 is the centre slice. */
  offset: number;
  /** DICOM only: nodule centre in pixel coordinates; default the image centre. */
  centerX?: number;
  centerY?: number;
  /**
   * An image this service stored itself (reindex re-encodes it): it was accepted when it came in,
   * so checks of the upload's conventions added later (the 16-bit HU + 32768 plausibility) must
   * not refuse it now and block a reindex of the whole archive.
   */
  stored?: boolean;
}

/** DICOM identifiers we keep (UIDs only; never names, ids, dates of birth...). */
export interface DicomIdentifiers {
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
}

/** A slice decoded, checked and reduced to what the model and storage need. */
export interface PreparedSlice {
  offset: number;
  /** The model input: size*size floats in [0,1] (HU windowed to [-1200, 600]), row-major. */
  patch: Float32Array;
  /**
   * The image we store and serve: a clean grayscale PNG with no metadata chunks.
   * Decoding it again with prepareSlice gives the same patch (used by reindex).
   */
  storedPng: Buffer;
  dicom?: DicomIdentifiers;
}

/** What preparation needs of the model: the edge of its square input patch (ModelCard.inputSize). */
export interface PatchSpec {
  inputSize: number;
}
