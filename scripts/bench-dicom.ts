/**
 * Time to decode one 512x512 CT phantom and cut its 64x64 patch, per accepted transfer syntax.
 *   npx tsx scripts/bench-dicom.ts
 */
import { ACCEPTED_TRANSFER_SYNTAXES, decodeDicomCt, dicomPatchHu, resolveCentre } from '../src/imaging/dicom.ts';
import { makePhantomDicom } from '../fixtures/phantoms.ts';

const RUNS = 7;
console.log('| transfer syntax | file bytes | decode + patch, median of 7 (ms) |\n|---|---|---|');
for (const [ts, name] of Object.entries(ACCEPTED_TRANSFER_SYNTAXES)) {
  const file = makePhantomDicom({ seed: 3, rows: 512, columns: 512, transferSyntaxUid: ts, pixelSpacingMm: [0.7, 0.7] });
  decodeDicomCt(file); // warm-up (loads the WebAssembly module where there is one)
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    const slice = decodeDicomCt(file);
    dicomPatchHu(slice, 64, resolveCentre(slice));
    ms.push(performance.now() - start);
  }
  ms.sort((a, b) => a - b);
  console.log(`| ${name} | ${file.length} | ${ms[RUNS >> 1]!.toFixed(1)} |`);
}
