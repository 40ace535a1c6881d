/**
 * Estimates the pixel spacing of the LIDC md882 patches the model was trained on (the PNGs do
 * not carry it): per nodule, diameter_mm / equivalent diameter in pixels of its outline on the
 * slice where it is largest. Evidence for PATCH_MM_PER_PIXEL (docs/inference.md).
 *   npx tsx scripts/md882-spacing.ts ../shared/data/lidc
 */
import fs from 'node:fs';
import path from 'node:path';
import { decodePng } from '../src/imaging/png.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: tsx scripts/md882-spacing.ts <lidc folder with labels.csv>');
const [header, ...lines] = fs.readFileSync(path.join(dir, 'labels.csv'), 'utf8').trim().split('\n');
const col = (name: string) => header!.split(',').indexOf(name);
const [subset, image, key, diameter] = ['subset', 'image_path', 'nodule_key', 'diameter_mm'].map(col);
const largest = new Map<string, { diameterMm: number; area: number }>();
for (const line of lines) {
  const c = line.split(',');
  if (c[subset!] !== 'md882') continue;
  // md882 is segmented: pixels outside the nodule outline are 0.
  let area = 0;
  for (const v of decodePng(fs.readFileSync(path.join(dir, c[image!]!))).raster.data) if (v > 0) area++;
  const seen = largest.get(c[key!]!);
  if (!seen || area > seen.area) largest.set(c[key!]!, { diameterMm: Number(c[diameter!]), area });
}
const spacing = [...largest.values()]
  .filter((n) => n.area >= 20 && n.diameterMm > 0)
  .map((n) => n.diameterMm / (2 * Math.sqrt(n.area / Math.PI)))
  .sort((a, b) => a - b);
const at = (p: number) => spacing[Math.floor(p * (spacing.length - 1))]!.toFixed(3);
console.log(`${spacing.length} nodules; mm per pixel p10 ${at(0.1)}, p25 ${at(0.25)}, median ${at(0.5)}, p75 ${at(0.75)}, p90 ${at(0.9)}`);
