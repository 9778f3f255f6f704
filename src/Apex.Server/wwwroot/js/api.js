// @ts-check
/**
 * HTTP access to the Apex API with the session's tokens. The session lives in localStorage so a
 * reload or a second tab stays signed in; the access token is refreshed shortly before it expires
 * (or after a 401), under a Web Lock so that two tabs never spend the same rotating refresh token.
 */

/** @typedef {{ id: string, email: string, display_name: string, tier: string, created_at: string }} User */
/** @typedef {{ access_token: string, refresh_token: string, expires_at: number, user: User }} Session */

const KEY = 'apex.session';
const REFRESH_MARGIN_MS = 60_000;

/** A failed request, described in words from the server's ProblemDetails. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {any} problem
   */
  constructor(status, message, problem) {
    super(message);
    this.status = status;
    this.problem = problem;
  }
}

/**
 * Words for a ProblemDetails: its detail (or title), then each validation error.
 * @param {any} problem
 * @param {number} status
 */
export function describeProblem(problem, status) {
  if (!problem || typeof problem !== 'object') return status === 0 ? 'The server cannot be reached. Check your connection and try again.' : `The server answered ${status}.`;
  const parts = [];
  const errors = problem.errors && typeof problem.errors === 'object' ? Object.values(problem.errors).flat().map(String) : [];
  if (problem.detail) parts.push(String(problem.detail));
  else if (!errors.length && problem.title) parts.push(String(problem.title));
  parts.push(...errors);
  if (status === 429 && !parts.length) parts.push('Too many requests; wait a moment and try again.');
  return parts.join(' ') || `The server answered ${status}.`;
}

/** @returns {Session | null} */
function load() {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

/** @type {Session | null} */
let session = load();
/** @type {Set<(s: Session | null) => void>} */
const listeners = new Set();

/** @param {Session | null} next */
function setSession(next) {
  const wasSignedIn = session !== null;
  session = next;
  if (next) localStorage.setItem(KEY, JSON.stringify(next));
  else localStorage.removeItem(KEY);
  if (wasSignedIn !== (next !== null)) listeners.forEach(fn => fn(next));
}

// Another tab signed in, out, or refreshed.
window.addEventListener('storage', event => {
  if (event.key !== KEY) return;
  const wasSignedIn = session !== null;
  session = load();
  if (wasSignedIn !== (session !== null)) listeners.forEach(fn => fn(session));
});

/** @param {(s: Session | null) => void} fn */
export function onSessionChange(fn) {
  listeners.add(fn);
}

export function currentUser() {
  return session?.user ?? null;
}

/** @param {any} tokens */
function fromTokens(tokens) {
  return { access_token: tokens.access_token, refresh_token: tokens.refresh_token, expires_at: Date.now() + tokens.expires_in * 1000, user: tokens.user };
}

/**
 * @template T
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
function exclusive(fn) {
  return navigator.locks ? navigator.locks.request('apex-refresh', fn) : fn();
}

/**
 * Makes sure the access token is fresh; `stale` is a token the server just refused.
 * @param {string} [stale]
 */
async function refresh(stale) {
  await exclusive(async () => {
    const latest = load();
    if (!latest) {
      setSession(null);
      return;
    }
    // Another tab may have refreshed while this one waited for the lock.
    const fresh = latest.expires_at - Date.now() > REFRESH_MARGIN_MS && latest.access_token !== stale;
    if (fresh) {
      session = latest;
      return;
    }
    const response = await fetch('/api/auth/refresh', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: latest.refresh_token }),
    }).catch(() => null);
    if (response === null) throw new ApiError(0, describeProblem(null, 0), null);
    if (response.ok) setSession(fromTokens(await response.json()));
    else if (response.status === 401) setSession(null);
    else throw new ApiError(response.status, describeProblem(await response.json().catch(() => null), response.status), null);
  });
}

/** @returns {Promise<string>} a valid access token */
export async function accessToken() {
  if (!session) throw new ApiError(401, 'You are signed out.', null);
  if (session.expires_at - Date.now() < REFRESH_MARGIN_MS) await refresh();
  if (!session) throw new ApiError(401, 'Your session ended; sign in again.', null);
  return session.access_token;
}

/**
 * Calls the API and returns its JSON (null for 204). Throws ApiError with the server's words.
 * @param {string} method
 * @param {string} path
 * @param {any} [body]
 * @param {{ anonymous?: boolean }} [options]
 */
export async function api(method, path, body, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const token = options.anonymous ? null : await accessToken();
    /** @type {Record<string, string>} */
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }).catch(() => null);
    if (response === null) throw new ApiError(0, describeProblem(null, 0), null);
    if (response.status === 401 && token && attempt === 0) {
      await refresh(token);
      continue;
    }
    const json = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, describeProblem(json, response.status), json);
    return json;
  }
}

/**
 * @param {'login' | 'register'} kind
 * @param {string} email
 * @param {string} password
 */
export async function signIn(kind, email, password) {
  const tokens = await api('POST', `/api/auth/${kind}`, { email, password }, { anonymous: true });
  setSession(fromTokens(tokens));
  return tokens.user;
}

export async function signOut() {
  try {
    if (session) await api('POST', '/api/auth/logout');
  } catch {
    // Signed out locally either way; the server's session expires on its own.
  }
  setSession(null);
}

/**
 * Uploads a file with progress (fetch has no upload progress; XMLHttpRequest has).
 * @param {string} path
 * @param {File} file
 * @param {string} contentType
 * @param {(loaded: number, total: number) => void} onProgress
 * @returns {Promise<{ status: number, json: any }>}
 */
export async function upload(path, file, contentType, onProgress) {
  const token = await accessToken();
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('content-type', contentType);
    xhr.upload.addEventListener('progress', e => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
    xhr.addEventListener('load', () => {
      let json = null;
      try { json = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      resolve({ status: xhr.status, json });
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, describeProblem(null, 0), null)));
    xhr.send(file);
  });
}
