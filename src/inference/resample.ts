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
