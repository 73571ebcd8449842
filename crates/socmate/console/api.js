// The SoCMate API client: every request the console makes goes through `api`.
//
// The session cookie is HttpOnly: this code never sees it. Every non-GET request carries
// `X-Requested-With: SoCMate`, which the server requires of cookie-authenticated unsafe requests.

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || null;
    this.errors = Array.isArray(this.problem.errors) ? this.problem.errors : [];
    this.retryAfter = retryAfter;
  }
}

let onUnauthenticated = () => {};

/** Sets what happens when a request finds the session gone (the sign-in page). */
export function whenUnauthenticated(handler) {
  onUnauthenticated = handler;
}

function retryAfterOf(response, data) {
  const header = response.headers.get('Retry-After');
  if (header && /^\d+$/.test(header.trim())) return Number(header.trim());
  if (data && typeof data.retry_after === 'number') return Math.ceil(data.retry_after);
  return null;
}

/**
 * Calls the API. Resolves with the parsed JSON body (or null for an empty body); rejects with an
 * ApiError carrying the RFC 9457 problem. A 401 outside the sign-in calls ends the session view.
 */
/**
 * A JSON number a double cannot hold as sent (a long beyond 2^53, a decimal with more digits than
 * a double keeps): it stays the text the server sent, in the table, in copies and in exports.
 */
export class ExactNumber {
  constructor(source) { this.source = source; }

  toString() { return this.source; }

  // Re-serialised as the same number text where the browser can (JSON.rawJSON), else as a string.
  toJSON() { return typeof JSON.rawJSON === 'function' ? JSON.rawJSON(this.source) : this.source; }
}

/** JSON.parse keeping every number whose text a double would change (JSON.parse source text access). */
export function parseExact(text) {
  return JSON.parse(text, (key, value, context) => (
    typeof value === 'number' && context && typeof context.source === 'string' && String(value) !== context.source
      ? new ExactNumber(context.source) : value));
}

export async function api(method, path, body, { allow401 = false, exact = false, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', signal };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Requested-With'] = 'SoCMate';
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, {
      code: 'network_error',
      title: 'Network error',
      detail: 'The SoCMate server could not be reached. Check your connection and try again.',
    });
  }
  let text;
  try {
    text = await response.text();
  } catch {
    // A large query result is streamed; when its SIEM's answer breaks off, the server cuts the
    // response short rather than end it as a complete, shorter result.
    throw new ApiError(0, {
      code: 'answer_cut_short',
      title: 'Answer cut short',
      detail: 'The answer broke off while it downloaded (the SIEM or the connection stopped). '
        + 'Nothing of it is shown; run it again.',
    });
  }
  let data = null;
  let readable = !text;
  if (text) {
    try { data = exact ? parseExact(text) : JSON.parse(text); readable = true; } catch { data = null; }
  }
  if (response.ok) {
    if (!readable) {
      throw new ApiError(0, {
        code: 'unreadable_answer',
        title: 'Unreadable answer',
        detail: 'The server answered with something that is not JSON. Try again.',
      });
    }
    return data;
  }
  const problem = data && typeof data === 'object' ? data : {
    title: response.statusText || 'Error',
    detail: `The server answered HTTP ${response.status}.`,
  };
  const error = new ApiError(response.status, problem, retryAfterOf(response, data));
  if (response.status === 401 && !allow401) onUnauthenticated(error);
  throw error;
}

/** A readable sentence for an API error, for status areas. */
export function describeError(error) {
  if (!(error instanceof ApiError)) return `Unexpected error: ${error && error.message}`;
  if (error.status === 429) {
    const wait = error.retryAfter != null ? `${error.retryAfter} seconds` : 'a moment';
    return `Too many requests; try again in ${wait}.`;
  }
  if (error.status === 403) return 'You do not have permission to do this (admin role required).';
  return error.message;
}

const cached = {};

/** The provider types with their forms (`GET /api/siem/provider-types`), fetched once. */
export function providerTypes() {
  cached.types = cached.types || api('GET', '/api/siem/provider-types')
    .then((data) => (data && data.provider_types) || [])
    .catch((e) => { cached.types = null; throw e; });
  return cached.types;
}

/** The live providers by name (`GET /api/siem/providers`), default first. */
export async function providerNames() {
  const data = await api('GET', '/api/siem/providers');
  return (data && data.providers) || [];
}
