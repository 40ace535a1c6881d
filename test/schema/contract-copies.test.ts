/**
 * The GraphQL contracts PACS front ends call are copied verbatim from the product spec
 * (`../shared/spec`, beside the repository) into src/schema: additions go to extensions.graphql,
 * never into a copy. This pins the copies to the spec, byte for byte.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../../src/paths.ts';

const SPEC_DIR = path.resolve(PROJECT_ROOT, '..', 'shared', 'spec');

for (const file of ['api-contract.graphql', 'api-contract-dicomweb.graphql']) {
  test(`src/schema/${file} is the spec's ${file}, verbatim`, { skip: fs.existsSync(SPEC_DIR) ? false : `no spec folder at ${SPEC_DIR}` }, () => {
    const copy = fs.readFileSync(path.join(PROJECT_ROOT, 'src', 'schema', file), 'utf8');
    const spec = fs.readFileSync(path.join(SPEC_DIR, file), 'utf8');
    assert.equal(copy, spec, `src/schema/${file} differs from ${path.join(SPEC_DIR, file)}: copy the spec again, unchanged`);
  });
}
