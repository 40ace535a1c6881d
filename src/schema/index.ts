/**
 * The executable schema's type definitions: the contracts, verbatim (the main one and the PACS
 * additions, api-contract-dicomweb.graphql), plus our extensions.
 */
import fs from 'node:fs';

const read = (file: string) => fs.readFileSync(new URL(file, import.meta.url), 'utf8');

export const typeDefs = [read('./api-contract.graphql'), read('./api-contract-dicomweb.graphql'), read('./extensions.graphql')];
