/**
 * Geometry of patches: centre crop to a square, then resize to the model input.
 *
 * The resize is the antialiased bilinear (triangle) filter of Pillow's `Image.resize(...,
 * BILINEAR)` on float images (and of torch `interpolate(..., antialias=True)`): plain
 * bilinear when enlarging, a triangle whose support grows with the ratio when shrinking,
 * so a 512-px patch is averaged down rather than aliased. Training code in Python can
 * reproduce it exactly, and an image already at the target size passes through unchanged.
 */

export interface Raster {
  width: number;
  height: number;
  /** Row-major samples, width * height. */
  data: Float64Array;
}

/** Largest centred square; non-square patches keep their centre (where the nodule is). */
export function centreCropSquare(img: Raster): Raster {
  const size = Math.min(img.width, img.height);
  if (img.width === size && img.height === size) return img;
  const x0 = Math.floor((img.width - size) / 2);
  const y0 = Math.floor((img.height - size) / 2);
  const data = new Float64Array(size * size);
  for (let y = 0; y < size; y++) {
    const from = (y + y0) * img.width + x0;
    data.set(img.data.subarray(from, from + size), y * size);
  }
  return { width: size, height: size, data };
}

interface Taps {
  start: Int32Array;
  weights: Float64Array[];
}

function triangle(x: number): number {
  const a = x < 0 ? -x : x;
  return a < 1 ? 1 - a : 0;
}

/** Per output sample: which input samples contribute and with what weight (Pillow's scheme). */
function filterTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const start = new Int32Array(outSize);
  const weights: Float64Array[] = [];
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + support + 0.5), inSize);
    const w = new Float64Array(Math.max(hi - lo, 0));
    let sum = 0;
    for (let i = 0; i < w.length; i++) {
      w[i] = triangle((i + lo - centre + 0.5) / filterScale);
      sum += w[i]!;
    }
    if (sum !== 0) for (let i = 0; i < w.length; i++) w[i]! /= sum;
    start[o] = lo;
    weights.push(w);
  }
  return { start, weights };
}

/** Separable resize: rows first, then columns. */
export function resize(img: Raster, outWidth: number, outHeight: number): Raster {
  if (img.width === outWidth && img.height === outHeight) return img;
  const tx = filterTaps(img.width, outWidth);
  const ty = filterTaps(img.height, outHeight);
  const tmp = new Float64Array(outWidth * img.height);
  for (let y = 0; y < img.height; y++) {
    const row = y * img.width;
    for (let x = 0; x < outWidth; x++) {
      const w = tx.weights[x]!;
      const s = row + tx.start[x]!;
      let acc = 0;
      for (let k = 0; k < w.length; k++) acc += w[k]! * img.data[s + k]!;
      tmp[y * outWidth + x] = acc;
    }
  }
  const out = new Float64Array(outWidth * outHeight);
  for (let y = 0; y < outHeight; y++) {
    const w = ty.weights[y]!;
    const s = ty.start[y]!;
    for (let x = 0; x < outWidth; x++) {
      let acc = 0;
      for (let k = 0; k < w.length; k++) acc += w[k]! * tmp[(s + k) * outWidth + x]!;
      out[y * outWidth + x] = acc;
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/** The PNG path's geometry: centre crop to square, then resize to size x size. */
export function toSquarePatch(img: Raster, size: number): Raster {
  return resize(centreCropSquare(img), size, size);
}

/**
 * Output samples on a regular grid over a source image: sample o of an axis sits at source
 * coordinate first + o * step (pixel centres at integers). The same triangle filter as resize():
 * bilinear when step <= 1, widened by step when shrinking so that every source pixel counts.
 * Taps outside the source take `pad` (air), so a window leaving the image fades to it.
 */
export interface SampleGrid {
  size: number;
  firstX: number;
  firstY: number;
  stepX: number;
  stepY: number;
}

function gridTaps(size: number, first: number, step: number): Taps {
  const filterScale = Math.max(step, 1);
  const start = new Int32Array(size);
  const weights: Float64Array[] = [];
  for (let o = 0; o < size; o++) {
    const centre = first + o * step;
    const lo = Math.floor(centre - filterScale) + 1;
    const hi = Math.ceil(centre + filterScale) - 1;
    const w = new Float64Array(Math.max(hi - lo + 1, 1));
    let sum = 0;
    for (let i = 0; i < w.length; i++) {
      w[i] = triangle((lo + i - centre) / filterScale);
      sum += w[i]!;
    }
    for (let i = 0; i < w.length; i++) w[i]! /= sum;
    start[o] = lo;
    weights.push(w);
  }
  return { start, weights };
}

export function resampleGrid(
  sample: (x: number, y: number) => number,
  width: number,
  height: number,
  pad: number,
  grid: SampleGrid,
): Raster {
  const { size } = grid;
  const tx = gridTaps(size, grid.firstX, grid.stepX);
  const ty = gridTaps(size, grid.firstY, grid.stepY);
  const yLo = ty.start[0]!;
  const yHi = ty.start[size - 1]! + ty.weights[size - 1]!.length;
  // Rows first, only over the source rows some output row needs.
  const tmp = new Float64Array((yHi - yLo) * size);
  for (let y = yLo; y < yHi; y++) {
    const inside = y >= 0 && y < height;
    for (let o = 0; o < size; o++) {
      const w = tx.weights[o]!;
      const s = tx.start[o]!;
      let acc = 0;
      for (let k = 0; k < w.length; k++) {
        const x = s + k;
        acc += w[k]! * (inside && x >= 0 && x < width ? sample(x, y) : pad);
      }
      tmp[(y - yLo) * size + o] = acc;
    }
  }
  const data = new Float64Array(size * size);
  for (let o = 0; o < size; o++) {
    const w = ty.weights[o]!;
    const s = ty.start[o]! - yLo;
    for (let x = 0; x < size; x++) {
      let acc = 0;
      for (let k = 0; k < w.length; k++) acc += w[k]! * tmp[(s + k) * size + x]!;
      data[o * size + x] = acc;
    }
  }
  return { width: size, height: size, data };
}
