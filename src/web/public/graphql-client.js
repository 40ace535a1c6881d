// The page's only way to the service: POST graphql with the key kept in this tab's session storage.

const KEY_ITEM = 'fcdn.apiKey';

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_ITEM) ?? '',
  set: (key) => sessionStorage.setItem(KEY_ITEM, key),
  clear: () => sessionStorage.removeItem(KEY_ITEM),
};

/** A failed request, with a message a person can act on (GraphQL's own messages and codes). */
export class RequestError extends Error {}

function describe(errors) {
  return errors.map((e) => (e.extensions?.code ? `${e.message} (${e.extensions.code})` : e.message)).join('; ');
}

export async function graphql(query, variables = {}) {
  const key = apiKey.get();
  if (!key) throw new RequestError('Enter an API key first.');
  let res;
  try {
    // Relative, so the page also works behind a proxy under a path prefix.
    res = await fetch('graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch (err) {
    throw new RequestError(`The service could not be reached: ${err.message}`);
  }
  let body;
  try {
    body = await res.json();
  } catch {
    throw new RequestError(`The service answered HTTP ${res.status} without a GraphQL response.`);
  }
  if (body.errors?.length) throw new RequestError(describe(body.errors));
  if (!res.ok || !body.data) throw new RequestError(`The service answered HTTP ${res.status}.`);
  return body.data;
}
