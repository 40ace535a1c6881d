/**
 * Container-aware mutations of PNG and DICOM files for the decoder fuzz tests (not a test file):
 * they corrupt what parsers trust (chunk and element lengths, tags, header fields, order) rather
 * than only random bytes, and can repair PNG CRCs so that a mutation reaches zlib and the filters.
 */
import zlib from 'node:zlib';
import fc from 'fast-check';
import { crc32, pngChunk as chunk } from '../../src/imaging/png.ts';

/** Lengths a hostile file claims: off by one, zero, the sign bit, "undefined length", everything. */
const HOSTILE_U32 = [0, 1, 2, 0x7fff, 0xffff, 0x10000, 0x7ffffff0, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff];
const HOSTILE_SIDES = [0, 1, 31, 32, 33, 511, 512, 513, 4095, 4096, 4097, 65535, 100_000, 0x7fffffff, 0xffffffff];

// ---- PNG -----------------------------------------------------------------------------------------

interface Span {
  start: number;
  end: number;
}

/** Chunk spans (length field to CRC) as far as they can be walked; stops at the first that overruns. */
function pngChunks(png: Buffer): Span[] {
  const out: Span[] = [];
  for (let pos = 8; pos + 12 <= png.length; ) {
    const len = png.readUInt32BE(pos);
    if (pos + 12 + len > png.length) break;
    out.push({ start: pos, end: pos + 12 + len });
    pos += 12 + len;
  }
  return out;
}

export function fixPngCrcs(png: Buffer): Buffer {
  const out = Buffer.from(png);
  for (const c of pngChunks(out)) out.writeUInt32BE(crc32(out.subarray(c.start + 4, c.end - 4)), c.end - 4);
  return out;
}


/** Deflate streams that inflate to far more than any accepted image (made once; ~1000:1). */
const BOMBS = [1 << 20, 64 << 20].map((n) => zlib.deflateSync(Buffer.alloc(n), { level: 9 }));

export type PngMutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'chunkLength'; chunk: number; value: number }
  | { op: 'ihdr'; field: 'width' | 'height'; value: number }
  | { op: 'ihdrByte'; at: number; value: number }
  | { op: 'swap'; a: number; b: number }
  | { op: 'duplicate'; chunk: number }
  | { op: 'drop'; chunk: number }
  | { op: 'insert'; chunk: number; type: string; length: number; truthful: boolean }
  | { op: 'bomb'; which: number }
  | { op: 'splitIdat'; parts: number }
  | { op: 'truncate'; at: number };

export const pngMutationArb: fc.Arbitrary<PngMutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('chunkLength' as const), chunk: fc.nat(), value: fc.oneof(fc.constantFrom(...HOSTILE_U32), fc.nat()) }),
  fc.record({ op: fc.constant('ihdr' as const), field: fc.constantFrom('width' as const, 'height' as const), value: fc.constantFrom(...HOSTILE_SIDES) }),
  fc.record({ op: fc.constant('ihdrByte' as const), at: fc.integer({ min: 8, max: 12 }), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ op: fc.constant('duplicate' as const), chunk: fc.nat() }),
  fc.record({ op: fc.constant('drop' as const), chunk: fc.nat() }),
  fc.record({
    op: fc.constant('insert' as const),
    chunk: fc.nat(),
    type: fc.constantFrom('tEXt', 'zTXt', 'iCCP', 'PLTE', 'tRNS', 'IHDR', 'IDAT', 'IEND', 'abCD', 'ABCD'),
    length: fc.oneof(fc.nat(300), fc.constantFrom(...HOSTILE_U32)),
    truthful: fc.boolean(),
  }),
  fc.record({ op: fc.constant('bomb' as const), which: fc.nat(BOMBS.length - 1) }),
  fc.record({ op: fc.constant('splitIdat' as const), parts: fc.integer({ min: 2, max: 64 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);

function applyPng(png: Buffer, m: PngMutation): Buffer {
  const chunks = pngChunks(png);
  const pick = (i: number) => chunks[i % Math.max(1, chunks.length)];
  const parts = () => chunks.map((c) => png.subarray(c.start, c.end));
  const rebuild = (list: Buffer[]) => Buffer.concat([png.subarray(0, 8), ...list, png.subarray(chunks.at(-1)?.end ?? 8)]);
  const out = Buffer.from(png);
  switch (m.op) {
    case 'flip':
      if (out.length) out[m.at % out.length]! ^= 1 << m.bit;
      return out;
    case 'chunkLength': {
      const c = pick(m.chunk);
      if (c) out.writeUInt32BE(m.value >>> 0, c.start);
      return out;
    }
    case 'ihdr':
      if (out.length >= 24) out.writeUInt32BE(m.value >>> 0, m.field === 'width' ? 16 : 20);
      return out;
    case 'ihdrByte':
      if (out.length >= 29) out[16 + m.at] = m.value;
      return out;
    case 'swap': {
      const list = parts();
      if (list.length < 2) return out;
      const a = m.a % list.length;
      const b = m.b % list.length;
      [list[a], list[b]] = [list[b]!, list[a]!];
      return rebuild(list);
    }
    case 'duplicate': {
      const list = parts();
      if (!list.length) return out;
      const i = m.chunk % list.length;
      list.splice(i, 0, list[i]!);
      return rebuild(list);
    }
    case 'drop': {
      const list = parts();
      if (!list.length) return out;
      list.splice(m.chunk % list.length, 1);
      return rebuild(list);
    }
    case 'insert': {
      const list = parts();
      const data = Buffer.alloc(m.truthful ? Math.min(m.length, 4096) : 0, 0x41);
      let extra = chunk(m.type, data);
      // A chunk that claims more bytes than follow it: the length field lies, the CRC is wherever it lands.
      if (!m.truthful) extra.writeUInt32BE(m.length >>> 0, 0);
      list.splice(m.chunk % (list.length + 1), 0, extra);
      return rebuild(list);
    }
    case 'bomb': {
      // The image data becomes one small chunk that inflates to megabytes.
      const list = parts();
      const first = list.findIndex((c) => c.toString('latin1', 4, 8) === 'IDAT');
      if (first < 0) return out;
      return rebuild([...list.slice(0, first), chunk('IDAT', BOMBS[m.which]!), ...list.slice(first).filter((c) => c.toString('latin1', 4, 8) !== 'IDAT')]);
    }
    case 'splitIdat': {
      const list = parts().flatMap((c) => {
        if (c.toString('latin1', 4, 8) !== 'IDAT') return [c];
        const data = c.subarray(8, c.length - 4);
        const size = Math.max(1, Math.ceil(data.length / m.parts));
        const pieces: Buffer[] = [];
        for (let i = 0; i < data.length; i += size) pieces.push(chunk('IDAT', data.subarray(i, i + size)));
        return pieces;
      });
      return rebuild(list);
    }
    case 'truncate':
      return out.subarray(0, m.at % (out.length + 1));
  }
}

export const pngCaseArb = fc.record({
  mutations: fc.array(pngMutationArb, { minLength: 1, maxLength: 4 }),
  repairCrcs: fc.boolean(),
});

export function mutatePng(base: Buffer, c: { mutations: PngMutation[]; repairCrcs: boolean }): Buffer {
  const out = c.mutations.reduce(applyPng, base);
  return c.repairCrcs ? fixPngCrcs(out) : out;
}

// ---- DICOM ---------------------------------------------------------------------------------------

/** VRs whose explicit encoding has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT']);

interface Element {
  start: number;
  tag: number;
  lengthAt: number;
  lengthBytes: 2 | 4;
  valueAt: number;
  end: number;
}

/** Elements of a Part 10 file (meta group explicit; data set explicit or implicit) as far as they walk. */
export function dicomElements(dcm: Buffer, implicit: boolean): Element[] {
  const out: Element[] = [];
  for (let pos = 132; pos + 8 <= dcm.length; ) {
    const group = dcm.readUInt16LE(pos);
    const tag = ((group << 16) | dcm.readUInt16LE(pos + 2)) >>> 0;
    const vr = dcm.toString('latin1', pos + 4, pos + 6);
    let el: Element;
    if (implicit && group !== 0x0002) el = { start: pos, tag, lengthAt: pos + 4, lengthBytes: 4, valueAt: pos + 8, end: 0 };
    else if (LONG_VRS.has(vr)) el = { start: pos, tag, lengthAt: pos + 8, lengthBytes: 4, valueAt: pos + 12, end: 0 };
    else el = { start: pos, tag, lengthAt: pos + 6, lengthBytes: 2, valueAt: pos + 8, end: 0 };
    if (el.valueAt > dcm.length) break;
    const length = el.lengthBytes === 2 ? dcm.readUInt16LE(el.lengthAt) : dcm.readUInt32LE(el.lengthAt);
    el.end = el.valueAt + length;
    if (el.end > dcm.length) break;
    out.push(el);
    pos = el.end;
  }
  return out;
}

/** Tags whose values decide allocation and interpretation: Rows, Columns, bits, samples, frames, spacing. */
const HEADER_TAGS = [0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280102, 0x00280103, 0x00280002, 0x00280008, 0x00280030, 0x00281052, 0x00281053, 0x00020010, 0x00080060, 0x00280004, 0x7fe00010];

export type DicomMutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'length'; element: number; value: number }
  | { op: 'headerValue'; tag: number; value: number }
  | { op: 'headerLength'; tag: number; value: number }
  | { op: 'swapTags'; a: number; b: number }
  | { op: 'duplicate'; element: number }
  | { op: 'drop'; element: number }
  | { op: 'scramble'; tag: number; seed: number }
  | { op: 'insertGarbage'; at: number; length: number; seed: number }
  | { op: 'truncate'; at: number };

export const dicomMutationArb: fc.Arbitrary<DicomMutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('length' as const), element: fc.nat(), value: fc.oneof(fc.constantFrom(...HOSTILE_U32), fc.nat()) }),
  fc.record({ op: fc.constant('headerValue' as const), tag: fc.constantFrom(...HEADER_TAGS), value: fc.oneof(fc.constantFrom(...HOSTILE_SIDES, 8, 12, 16, 2, 3), fc.nat(65535)) }),
  fc.record({ op: fc.constant('headerLength' as const), tag: fc.constantFrom(...HEADER_TAGS), value: fc.constantFrom(...HOSTILE_U32) }),
  fc.record({ op: fc.constant('swapTags' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ op: fc.constant('duplicate' as const), element: fc.nat() }),
  fc.record({ op: fc.constant('drop' as const), element: fc.nat() }),
  fc.record({ op: fc.constant('scramble' as const), tag: fc.constantFrom(...HEADER_TAGS), seed: fc.integer() }),
  fc.record({ op: fc.constant('insertGarbage' as const), at: fc.nat(), length: fc.nat(64), seed: fc.integer() }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);

function bytesFrom(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function applyDicom(implicit: boolean) {
  return (dcm: Buffer, m: DicomMutation): Buffer => {
    const els = dicomElements(dcm, implicit);
    const pick = (i: number) => els[i % Math.max(1, els.length)];
    const byTag = (tag: number) => els.find((e) => e.tag === tag);
    const writeLength = (buf: Buffer, el: Element, value: number) => {
      if (el.lengthBytes === 2) buf.writeUInt16LE(value & 0xffff, el.lengthAt);
      else buf.writeUInt32LE(value >>> 0, el.lengthAt);
    };
    const parts = () => els.map((e) => dcm.subarray(e.start, e.end));
    const rebuild = (list: Buffer[]) => Buffer.concat([dcm.subarray(0, 132), ...list, dcm.subarray(els.at(-1)?.end ?? 132)]);
    const out = Buffer.from(dcm);
    switch (m.op) {
      case 'flip':
        if (out.length) out[m.at % out.length]! ^= 1 << m.bit;
        return out;
      case 'length': {
        const el = pick(m.element);
        if (el) writeLength(out, el, m.value);
        return out;
      }
      case 'headerValue': {
        const el = byTag(m.tag);
        if (el && el.end - el.valueAt >= 2) out.writeUInt16LE(m.value & 0xffff, el.valueAt);
        return out;
      }
      case 'headerLength': {
        const el = byTag(m.tag);
        if (el) writeLength(out, el, m.value);
        return out;
      }
      case 'swapTags': {
        const a = pick(m.a);
        const b = pick(m.b);
        if (a && b) {
          const ta = Buffer.from(dcm.subarray(a.start, a.start + 4));
          dcm.copy(out, a.start, b.start, b.start + 4);
          ta.copy(out, b.start);
        }
        return out;
      }
      case 'duplicate': {
        const list = parts();
        if (!list.length) return out;
        const i = m.element % list.length;
        list.splice(i, 0, list[i]!);
        return rebuild(list);
      }
      case 'drop': {
        const list = parts();
        if (!list.length) return out;
        list.splice(m.element % list.length, 1);
        return rebuild(list);
      }
      case 'scramble': {
        const el = byTag(m.tag);
        if (el) bytesFrom(m.seed, Math.min(el.end - el.valueAt, 64)).copy(out, el.valueAt);
        return out;
      }
      case 'insertGarbage': {
        const at = 132 + (m.at % Math.max(1, out.length - 131));
        return Buffer.concat([out.subarray(0, at), bytesFrom(m.seed, m.length), out.subarray(at)]);
      }
      case 'truncate':
        return out.subarray(0, m.at % (out.length + 1));
    }
  };
}

export const dicomCaseArb = fc.array(dicomMutationArb, { minLength: 1, maxLength: 4 });

export function mutateDicom(base: Buffer, mutations: DicomMutation[], implicit: boolean): Buffer {
  return mutations.reduce(applyDicom(implicit), base);
}
