/** The executable schema's type definitions: the contract, verbatim, plus our extensions. */
import fs from 'node:fs';

const read = (file: string) => fs.readFileSync(new URL(file, import.meta.url), 'utf8');

export const typeDefs = [read('./api-contract.graphql'), read('./extensions.graphql')];
