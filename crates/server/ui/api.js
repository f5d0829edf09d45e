// The page's only way to the server: same-origin fetches carrying the API key.
//
// The key lives in sessionStorage (this tab only, gone when it closes). A 401 becomes an
// AuthError so the page can ask for a key and retry. Streams are read with one
// TextDecoder in streaming mode, so a UTF-8 character split across network chunks (every
// Hangul syllable is three bytes) is never turned into U+FFFD.

const KEY = 'jikji.apiKey';

export class AuthError extends Error {}
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY) || '';
}

export function setKey(k) {
  if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY);
}

function headers(json) {
  const h = {};
  const k = getKey();
  if (k) h.Authorization = 'Bearer ' + k;
  if (json) h['Content-Type'] = 'application/json';
  return h;
}

async function failure(resp) {
  let msg = `HTTP ${resp.status}`;
  try {
    const body = await resp.json();
    if (body?.error?.message) msg = String(body.error.message);
  } catch (e) { /* not JSON */ }
  if (resp.status === 401) return new AuthError(msg);
  return new ApiError(msg, resp.status);
}

export async function getJson(path) {
  const resp = await fetch(path, { headers: headers(false), cache: 'no-store' });
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

/** `/health` needs no key: 'ok', 'draining' or 'down'. */
export async function health() {
  try {
    const resp = await fetch('/health', { cache: 'no-store' });
    if (resp.ok) return 'ok';
    return resp.status === 503 ? 'draining' : 'down';
  } catch (e) {
    return 'down';
  }
}

/**
 * Streams a chat completion. Calls `onChunk(json)` for every SSE data object and resolves
 * when the stream ends; rejects with AbortError when `signal` aborts.
 */
export async function streamChat(body, signal, onChunk) {
  const resp = await fetch('/v1/chat/completions', {
    method: 'POST', headers: headers(true), body: JSON.stringify(body), signal,
  });
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder('utf-8');
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    buf += decoder.decode(value || new Uint8Array(), { stream: !done });
    let cut;
    while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
      const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      if (!data) continue;
      if (data === '[DONE]') return;
      let obj;
      try { obj = JSON.parse(data); } catch (e) { continue; }
      if (obj && obj.error) throw new ApiError(String(obj.error.message || 'error'), 500);
      onChunk(obj);
    }
    if (done) return;
  }
}
