/** Where the project's own files are (the ground floor: imports nothing of the project). */
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
