/**
 * The results page at `/`: static HTML, CSS and ES modules from src/web/public, served as they
 * are (no build step). The page talks to /graphql with the key the user pastes; the server adds
 * nothing but a Content-Security-Policy that allows only this origin's scripts and API.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type RequestHandler } from 'express';

export const WEB_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'public');

/** publicUrl: FCDN_PUBLIC_URL, the origin Slice.imageUrl points at when it is set. */
export function resultsPage(publicUrl?: string): RequestHandler {
  const imageOrigin = publicUrl ? ` ${new URL(publicUrl).origin}` : '';
  const csp = [
    "default-src 'self'",
    `img-src 'self' blob: data:${imageOrigin}`,
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return express.static(WEB_ROOT, {
    index: 'index.html',
    dotfiles: 'ignore',
    // Pages and modules change with the service version; revalidate rather than cache stale code.
    setHeaders: (res) => {
      res.setHeader('Content-Security-Policy', csp);
      res.setHeader('Cache-Control', 'no-cache');
      res.setHeader('X-Content-Type-Options', 'nosniff');
    },
  });
}
