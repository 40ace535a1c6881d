/**
 * NoduleCase.viewerUrl: the case's study in the operator's viewer, from FCDN_VIEWER_URL_TEMPLATE
 * (e.g. OHIF: `https://viewer.example/viewer?StudyInstanceUIDs={studyInstanceUid}`). Placeholders:
 * {studyInstanceUid}, {seriesInstanceUid}, {sopInstanceUid} (of the centre slice); each value is
 * URL-encoded. A case that lacks a UID the template names gets no link.
 */
import { ConfigError } from '../errors.ts';

const PLACEHOLDER = /\{(studyInstanceUid|seriesInstanceUid|sopInstanceUid)\}/g;
const ANY_PLACEHOLDER = /\{([^}]*)\}/g;

export interface ViewerUids {
  studyInstanceUid?: string | null;
  seriesInstanceUid?: string | null;
  sopInstanceUid?: string | null;
}

/** Checked at start: an absolute http(s) URL naming at least the study, and no unknown placeholder. */
export function checkViewerUrlTemplate(template: string): string {
  for (const m of template.matchAll(ANY_PLACEHOLDER)) {
    if (!/^(studyInstanceUid|seriesInstanceUid|sopInstanceUid)$/.test(m[1]!)) {
      throw new ConfigError(`FCDN_VIEWER_URL_TEMPLATE: unknown placeholder {${m[1]}} (known: {studyInstanceUid}, {seriesInstanceUid}, {sopInstanceUid})`);
    }
  }
  if (!template.includes('{studyInstanceUid}')) throw new ConfigError('FCDN_VIEWER_URL_TEMPLATE must contain {studyInstanceUid}');
  let url: URL;
  try {
    url = new URL(template.replace(PLACEHOLDER, '1.2.3'));
  } catch {
    throw new ConfigError(`FCDN_VIEWER_URL_TEMPLATE is not an absolute URL: "${template.slice(0, 100)}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError('FCDN_VIEWER_URL_TEMPLATE must be an http(s) URL');
  return template;
}

export function viewerUrl(template: string | undefined, uids: ViewerUids): string | null {
  if (!template) return null;
  let missing = false;
  const url = template.replace(PLACEHOLDER, (_, name: keyof ViewerUids) => {
    const value = uids[name];
    if (!value) missing = true;
    return encodeURIComponent(value ?? '');
  });
  return missing ? null : url;
}

/** The configured template, for the NoduleCase.viewerUrl resolver. */
export class ViewerLinks {
  constructor(private readonly template: string | undefined) {}

  /** Whether the template names this UID (so that the resolver loads the centre slice only when needed). */
  names(uid: keyof ViewerUids): boolean {
    return Boolean(this.template?.includes(`{${uid}}`));
  }

  forCase(uids: ViewerUids): string | null {
    return viewerUrl(this.template, uids);
  }
}
