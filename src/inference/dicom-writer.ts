/**
 * A small DICOM Part 10 writer, enough for synthetic CT instances in tests and demos
 * (never for real patient data). Little endian only; explicit or implicit VR for the data
 * set, deflated for the deflated syntax; the file meta group is always explicit VR, as PS3.10
 * requires.
 */
import zlib from 'node:zlib';

export interface DicomWriteElement {
  /** (group << 16) | element, e.g. 0x00100010 for PatientName. */
  tag: number;
  vr: string;
  value: string | Buffer | { us: number[] } | { encapsulatedFragments: Buffer[] };
}

/** VRs whose explicit encoding has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT']);
const UNDEFINED_LENGTH = 0xffffffff;

function valueBytes(el: DicomWriteElement): Buffer {
  const v = el.value;
  if (typeof v === 'string') {
    // Even length: UIDs pad with NUL, text with a space (PS3.5 6.2).
    const padded = v.length % 2 === 1 ? v + (el.vr === 'UI' ? '\0' : ' ') : v;
    return Buffer.from(padded, 'latin1');
  }
  if (Buffer.isBuffer(v)) return v.length % 2 === 1 ? Buffer.concat([v, Buffer.alloc(1)]) : v;
  if ('us' in v) {
    const b = Buffer.alloc(v.us.length * 2);
    v.us.forEach((n, i) => b.writeUInt16LE(n, i * 2));
    return b;
  }
  throw new Error('encapsulated pixel data has no plain value');
}

function tagBytes(tag: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(tag >>> 16, 0);
  b.writeUInt16LE(tag & 0xffff, 2);
  return b;
}

function item(tag: number, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  tagBytes(tag).copy(head, 0);
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
}

/** Compressed pixel data: an empty basic offset table, then the fragments (PS3.5 A.4). */
function encapsulated(fragments: Buffer[]): Buffer {
  const even = fragments.map((f) => (f.length % 2 ? Buffer.concat([f, Buffer.alloc(1)]) : f));
  return Buffer.concat([item(0xfffee000, Buffer.alloc(0)), ...even.map((f) => item(0xfffee000, f)), item(0xfffee0dd, Buffer.alloc(0))]);
}

function encodeElement(el: DicomWriteElement, explicit: boolean): Buffer {
  const isEncapsulated = typeof el.value === 'object' && !Buffer.isBuffer(el.value) && 'encapsulatedFragments' in el.value;
  const body = isEncapsulated
    ? encapsulated((el.value as { encapsulatedFragments: Buffer[] }).encapsulatedFragments)
    : valueBytes(el);
  const length = isEncapsulated ? UNDEFINED_LENGTH : body.length;
  let head: Buffer;
  if (!explicit) {
    head = Buffer.alloc(8);
    head.writeUInt32LE(length, 4);
  } else if (LONG_VRS.has(el.vr)) {
    head = Buffer.alloc(12);
    head.write(el.vr, 4, 'latin1');
    head.writeUInt32LE(length, 8);
  } else {
    if (body.length > 0xffff) throw new Error(`value of ${el.vr} element too long`);
    head = Buffer.alloc(8);
    head.write(el.vr, 4, 'latin1');
    head.writeUInt16LE(length, 6);
  }
  tagBytes(el.tag).copy(head, 0);
  return Buffer.concat([head, body]);
}

export interface DicomFileParts {
  transferSyntaxUid: string;
  sopClassUid: string;
  sopInstanceUid: string;
  /** Data set elements (group 0002 excluded); written in tag order. */
  elements: DicomWriteElement[];
  /** Implicit VR for the data set (only meaningful for the implicit little endian syntax). */
  implicitVr?: boolean;
}

export function writeDicomPart10(parts: DicomFileParts): Buffer {
  const meta = [
    { tag: 0x00020001, vr: 'OB', value: Buffer.from([0, 1]) },
    { tag: 0x00020002, vr: 'UI', value: parts.sopClassUid },
    { tag: 0x00020003, vr: 'UI', value: parts.sopInstanceUid },
    { tag: 0x00020010, vr: 'UI', value: parts.transferSyntaxUid },
    { tag: 0x00020012, vr: 'UI', value: '2.25.1868124378901273403185296716348916' },
    { tag: 0x00020013, vr: 'SH', value: 'FCDN_PHANTOM' },
  ].map((el) => encodeElement(el, true));
  const metaBody = Buffer.concat(meta);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(metaBody.length);
  const sorted = [...parts.elements].sort((a, b) => a.tag - b.tag);
  let data = [Buffer.concat(sorted.map((el) => encodeElement(el, !parts.implicitVr)))];
  // Deflated Explicit VR Little Endian: the data set after the meta group is raw deflate.
  if (parts.transferSyntaxUid === '1.2.840.10008.1.2.1.99') data = [zlib.deflateRawSync(data[0]!)];
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM', 'latin1'),
    encodeElement({ tag: 0x00020000, vr: 'UL', value: groupLength }, true),
    metaBody,
    ...data,
  ]);
}
