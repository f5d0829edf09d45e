// Conversations kept in this browser (localStorage), and their JSON export/import.
//
// One key holds every conversation, so a reload restores exactly what was there; writes
// are whole-object and synchronous, which is simple and plenty fast for chat-sized data.
// Imported data is untrusted: it is rebuilt field by field into plain strings and numbers
// (unknown fields dropped, sizes capped) before it is kept or shown.

const KEY = 'jikji.conversations.v1';
const CURRENT = 'jikji.current.v1';
export const FORMAT = 'jikji-conversations';

export const DEFAULT_SETTINGS = Object.freeze({ temperature: 0.7, top_p: 0.95, top_k: 40, max_tokens: 512 });

function newId() {
  const a = new Uint8Array(8);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function newConversation() {
  const now = Date.now();
  return { id: newId(), title: '', created: now, updated: now, system: '', settings: { ...DEFAULT_SETTINGS }, messages: [] };
}

const str = (v, max = 1 << 20) => (typeof v === 'string' ? v.slice(0, max) : '');
const num = (v, lo, hi, dflt) => (typeof v === 'number' && Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : dflt);

function cleanMessage(m) {
  if (!m || typeof m !== 'object') return null;
  const role = m.role === 'user' || m.role === 'assistant' ? m.role : null;
  if (!role) return null;
  const out = { role, content: str(m.content) };
  if (m.reasoning) out.reasoning = str(m.reasoning);
  if (Array.isArray(m.tool_calls)) {
    out.tool_calls = m.tool_calls.slice(0, 64).map((c) => ({ name: str(c?.name, 256), arguments: str(c?.arguments, 1 << 16) }));
  }
  if (m.stats && typeof m.stats === 'object') {
    out.stats = {
      tps: num(m.stats.tps, 0, 1e9, 0), tokens: num(m.stats.tokens, 0, 1e9, 0),
      used: num(m.stats.used, 0, 1e9, 0), ctx: num(m.stats.ctx, 0, 1e9, 0),
    };
  }
  if (m.stopped === true) out.stopped = true;
  if (m.error) out.error = str(m.error, 4096);
  return out;
}

/** A conversation rebuilt from untrusted data, or null. */
export function cleanConversation(c, keepId = true) {
  if (!c || typeof c !== 'object' || !Array.isArray(c.messages)) return null;
  const s = c.settings && typeof c.settings === 'object' ? c.settings : {};
  return {
    id: keepId && typeof c.id === 'string' && /^[0-9a-f]{1,32}$/.test(c.id) ? c.id : newId(),
    title: str(c.title, 200),
    created: num(c.created, 0, 1e15, Date.now()),
    updated: num(c.updated, 0, 1e15, Date.now()),
    system: str(c.system, 1 << 16),
    settings: {
      temperature: num(s.temperature, 0, 2, DEFAULT_SETTINGS.temperature),
      top_p: num(s.top_p, 0, 1, DEFAULT_SETTINGS.top_p),
      top_k: Math.round(num(s.top_k, 0, 1000, DEFAULT_SETTINGS.top_k)),
      max_tokens: Math.round(num(s.max_tokens, 1, 1 << 20, DEFAULT_SETTINGS.max_tokens)),
    },
    messages: c.messages.slice(0, 10000).map(cleanMessage).filter(Boolean),
  };
}

export function loadAll() {
  let list = [];
  try {
    const raw = JSON.parse(localStorage.getItem(KEY) || '[]');
    if (Array.isArray(raw)) list = raw.map((c) => cleanConversation(c)).filter(Boolean);
  } catch (e) {
    list = [];
  }
  list.sort((a, b) => b.updated - a.updated);
  return { list, current: localStorage.getItem(CURRENT) || '' };
}

export function saveAll(list, currentId) {
  try {
    localStorage.setItem(KEY, JSON.stringify(list));
    localStorage.setItem(CURRENT, currentId || '');
    return true;
  } catch (e) {
    return false; // quota exceeded or storage disabled: the page keeps working in memory
  }
}

export function exportJson(list) {
  return JSON.stringify({ format: FORMAT, version: 1, exported: new Date().toISOString(), conversations: list }, null, 2);
}

/** Conversations from an exported file (the export format, one conversation, or an array). */
export function parseImport(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return [];
  }
  const items = Array.isArray(data) ? data : Array.isArray(data?.conversations) ? data.conversations : [data];
  return items.map((c) => cleanConversation(c, false)).filter(Boolean);
}
