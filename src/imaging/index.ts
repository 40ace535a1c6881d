/** Public API of the imaging layer: decoding PNG and DICOM slices and preparing the model's input patch. */
export type * from './types.ts';
export { prepareSlice, detectFormat, type SliceFormat } from './prepare-slice.ts';
export { SlicePreparer, type SlicePreparerOptions } from './slice-preparer.ts';
export { decodePng, readPngHeader, encodeGrayPng, PNG_MIN_SIDE, PNG_MAX_SIDE } from './png.ts';
export {
  decodeDicomCt,
  ACCEPTED_TRANSFER_SYNTAXES,
  REFUSED_TRANSFER_SYNTAXES,
  DICOM_MAX_SIDE,
  DICOM_MIN_SIDE,
  PATCH_MM_PER_PIXEL,
  type DicomCtSlice,
} from './dicom.ts';
export { WINDOW_MIN_HU, WINDOW_MAX_HU, PNG16_HU_OFFSET, windowHu } from './intensity.ts';
