// The chat page: conversations, the composer, streaming answers and the server's status.
//
// State lives in `conversations` (persisted by store.js after every change); the DOM is
// redrawn from it. A streaming answer re-renders its Markdown at most once per animation
// frame. All text from the user or the model enters the DOM as text nodes (markdown.js
// builds elements; nothing here assigns HTML).

import { t, translatePage } from './i18n.js';
import { renderMarkdown } from './markdown.js';
import * as store from './store.js';
import * as api from './api.js';

const $ = (id) => document.getElementById(id);
const ui = {
  list: $('conv-list'), messages: $('messages'), composer: $('composer'), send: $('send'), stop: $('stop'),
  form: $('composer-form'), title: $('title'), notice: $('notice'), settings: $('settings'),
  settingsToggle: $('settings-toggle'), system: $('system'), dialog: $('key-dialog'), keyForm: $('key-form'),
  keyInput: $('api-key'), keyMessage: $('key-message'), modelName: $('model-name'), modelCtx: $('model-ctx'),
  dot: $('health-dot'), sidebar: $('sidebar'),
};
const SETTING_FIELDS = ['temperature', 'top_p', 'top_k', 'max_tokens'];

let { list: conversations, current: currentId } = store.loadAll();
let props = null; // GET /props once authorized
let running = null; // { controller, conv, msg } while an answer streams
let composing = false; // an IME composition is open in the composer
let pendingAfterKey = null; // what to retry once a key is accepted

function current() {
  let c = conversations.find((x) => x.id === currentId);
  if (!c) {
    c = conversations[0];
    if (!c) { c = store.newConversation(); conversations.unshift(c); }
    currentId = c.id;
  }
  return c;
}

function persist() {
  store.saveAll(conversations, currentId);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(label, action, testid) {
  const b = el('button', null, label);
  b.type = 'button';
  b.dataset.action = action;
  if (testid) b.dataset.testid = testid;
  return b;
}

function showNotice(text) {
  ui.notice.textContent = text || '';
  ui.notice.hidden = !text;
}

// ---- conversation list ----------------------------------------------------------------

function titleOf(c) {
  return c.title || c.messages.find((m) => m.role === 'user')?.content.slice(0, 60).replace(/\s+/g, ' ') || t('untitled');
}

function drawList() {
  ui.list.replaceChildren();
  for (const c of conversations) {
    const li = el('li');
    li.dataset.testid = 'conversation';
    li.dataset.id = c.id;
    if (c.id === currentId) li.classList.add('current');
    const open = button(titleOf(c), 'open');
    open.className = 'open';
    open.title = titleOf(c);
    const rm = button('×', 'remove', 'remove-conversation');
    rm.className = 'remove';
    rm.setAttribute('aria-label', t('deleteConv'));
    li.append(open, rm);
    ui.list.append(li);
  }
}

ui.list.addEventListener('click', (e) => {
  const b = e.target.closest('button');
  const id = b?.closest('li')?.dataset.id;
  if (!b || !id) return;
  if (b.dataset.action === 'open') { currentId = id; ui.sidebar.classList.remove('open'); }
  if (b.dataset.action === 'remove') removeConversation(id);
  persist();
  drawAll();
});

function removeConversation(id) {
  if (running && running.conv.id === id) running.controller.abort();
  conversations = conversations.filter((c) => c.id !== id);
  if (currentId === id) currentId = conversations[0]?.id || '';
}

$('new-chat').addEventListener('click', () => {
  const cur = current();
  if (cur.messages.length === 0) { ui.composer.focus(); return; }
  const c = store.newConversation();
  c.system = cur.system;
  c.settings = { ...cur.settings };
  conversations.unshift(c);
  currentId = c.id;
  persist();
  drawAll();
  ui.composer.focus();
});

$('delete').addEventListener('click', () => {
  removeConversation(current().id);
  persist();
  drawAll();
});

ui.title.addEventListener('change', () => {
  const c = current();
  c.title = ui.title.value.trim().slice(0, 200);
  c.updated = Date.now();
  persist();
  drawList();
});

$('export').addEventListener('click', () => {
  const blob = new Blob([store.exportJson(conversations)], { type: 'application/json' });
  const a = el('a');
  a.href = URL.createObjectURL(blob);
  a.download = `jikji-conversations-${new Date().toISOString().slice(0, 10)}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});

$('import').addEventListener('change', async (e) => {
  const file = e.target.files?.[0];
  e.target.value = '';
  if (!file) return;
  const imported = store.parseImport(await file.text());
  if (imported.length === 0) { showNotice(t('importFailed')); return; }
  conversations = [...imported, ...conversations];
  currentId = imported[0].id;
  persist();
  drawAll();
  showNotice('');
  ui.messages.prepend(el('p', 'empty', t('importDone', { n: imported.length })));
});

$('menu').addEventListener('click', () => ui.sidebar.classList.toggle('open'));

// ---- settings -------------------------------------------------------------------------

ui.settingsToggle.addEventListener('click', () => {
  ui.settings.hidden = !ui.settings.hidden;
  ui.settingsToggle.setAttribute('aria-expanded', String(!ui.settings.hidden));
});

function drawSettings() {
  const c = current();
  ui.system.value = c.system;
  for (const f of SETTING_FIELDS) $(f).value = String(c.settings[f]);
}

ui.system.addEventListener('input', () => { current().system = ui.system.value; persist(); });
for (const f of SETTING_FIELDS) {
  $(f).addEventListener('change', () => {
    const c = current();
    const clean = store.cleanConversation({ messages: [], settings: { ...c.settings, [f]: Number($(f).value) } });
    c.settings[f] = clean.settings[f];
    $(f).value = String(c.settings[f]);
    persist();
  });
}

// ---- messages -------------------------------------------------------------------------

function statsText(s) {
  const tps = s.tps >= 100 ? s.tps.toFixed(0) : s.tps.toFixed(1);
  if (!s.ctx) return t('statsNoCtx', { tps, n: s.tokens });
  return t('stats', { tps, n: s.tokens, used: s.used, ctx: s.ctx, pct: Math.round((100 * s.used) / s.ctx) });
}

/** Fills a message's element from its data (used while streaming, too). */
function fillMessage(node, m, actions) {
  node.replaceChildren();
  node.append(el('div', 'who', m.role === 'user' ? t('you') : t('assistant')));
  if (m.role === 'assistant' && m.reasoning) {
    const d = el('details', 'reasoning');
    d.dataset.testid = 'reasoning';
    d.append(el('summary', null, t('reasoning')), el('div', 'reasoning-text', m.reasoning));
    node.append(d);
  }
  for (const call of m.tool_calls || []) {
    const box = el('div', 'tool-call');
    box.dataset.testid = 'tool-call';
    box.append(el('strong', null, `${t('toolCall')}: ${call.name || '?'}`), el('pre', null, call.arguments || ''));
    node.append(box);
  }
  const content = el('div', 'content');
  content.dataset.testid = 'message-content';
  if (m.role === 'user') content.textContent = m.content;
  else content.append(renderMarkdown(m.content, { copyLabel: t('copy') }));
  node.append(content);
  const meta = el('div', 'meta');
  if (m.error) meta.append(el('span', 'error-text', t('errorPrefix') + m.error));
  if (m.stopped) meta.append(el('span', 'stopped', t('stopped')));
  if (m.stats) {
    const s = el('span', 'stats', statsText(m.stats));
    s.dataset.testid = 'stats';
    meta.append(s);
  }
  if (actions && !running) {
    if (m.role === 'user') meta.append(button(t('edit'), 'edit', 'edit'));
    else meta.append(button(t('regenerate'), 'regenerate', 'regenerate'));
  }
  if (meta.childElementCount) node.append(meta);
}

function messageNode(m) {
  const node = el('div', 'message');
  node.dataset.testid = 'message';
  node.dataset.role = m.role;
  return node;
}

function drawMessages() {
  const c = current();
  ui.messages.replaceChildren();
  if (c.messages.length === 0) ui.messages.append(el('p', 'empty', t('empty')));
  // The last user message can be edited, the answer after it regenerated.
  const lastUser = c.messages.map((m) => m.role).lastIndexOf('user');
  c.messages.forEach((m, i) => {
    const node = messageNode(m);
    fillMessage(node, m, i === lastUser || (m.role === 'assistant' && i === c.messages.length - 1));
    if (running && running.msg === m) { node.classList.add('streaming'); running.node = node; }
    ui.messages.append(node);
  });
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function drawAll() {
  const c = current();
  ui.title.value = c.title;
  ui.title.placeholder = titleOf(c);
  drawList();
  drawSettings();
  drawMessages();
  setRunning(Boolean(running));
}

ui.messages.addEventListener('click', async (e) => {
  const b = e.target.closest('button');
  if (!b) return;
  if (b.dataset.action === 'copy-code') {
    const code = b.closest('.code-block')?.querySelector('code')?.textContent ?? '';
    try {
      await navigator.clipboard.writeText(code);
      b.textContent = t('copied');
      setTimeout(() => { b.textContent = t('copy'); }, 1500);
    } catch (err) {
      const range = document.createRange();
      range.selectNodeContents(b.closest('.code-block').querySelector('code'));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
    }
  } else if (b.dataset.action === 'regenerate') {
    const c = current();
    if (c.messages.at(-1)?.role === 'assistant') c.messages.pop();
    persist();
    answer(c);
  } else if (b.dataset.action === 'edit') {
    startEdit(b.closest('.message'));
  }
});

function startEdit(node) {
  const c = current();
  const at = c.messages.map((x) => x.role).lastIndexOf('user');
  const m = c.messages[at];
  if (!m) return;
  const box = el('div', 'edit-box');
  const area = el('textarea');
  area.value = m.content;
  area.dataset.testid = 'edit-box';
  const row = el('div', 'row');
  const save = button(t('save'), 'save-edit', 'save-edit');
  save.className = 'primary';
  const cancel = button(t('cancel'), 'cancel-edit', 'cancel-edit');
  row.append(cancel, save);
  box.append(area, row);
  node.querySelector('.content').replaceWith(box);
  node.querySelector('.meta')?.remove();
  area.focus();
  cancel.addEventListener('click', () => drawMessages());
  save.addEventListener('click', () => {
    const text = area.value.trim();
    if (!text) return;
    m.content = text;
    c.messages.length = at + 1; // the old answer goes
    c.updated = Date.now();
    persist();
    answer(c);
  });
}

// ---- composer -------------------------------------------------------------------------

ui.composer.addEventListener('compositionstart', () => { composing = true; });
ui.composer.addEventListener('compositionend', () => { composing = false; });
ui.composer.addEventListener('keydown', (e) => {
  if (e.key !== 'Enter' || e.shiftKey) return; // Shift+Enter: the textarea's own newline
  // Enter that commits a Hangul syllable belongs to the IME, never to us.
  if (e.isComposing || composing || e.keyCode === 229) return;
  e.preventDefault();
  submit();
});
ui.form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
ui.stop.addEventListener('click', () => running?.controller.abort());

function submit() {
  const text = ui.composer.value.trim();
  if (!text || running) return;
  const c = current();
  c.messages.push({ role: 'user', content: text });
  c.updated = Date.now();
  ui.composer.value = '';
  conversations = [c, ...conversations.filter((x) => x !== c)];
  persist();
  answer(c);
}

function setRunning(on) {
  ui.send.hidden = on;
  ui.stop.hidden = !on;
}

function requestBody(c) {
  const messages = [];
  if (c.system.trim()) messages.push({ role: 'system', content: c.system });
  for (const m of c.messages) {
    if (m.role === 'assistant' && !m.content && m.error) continue;
    messages.push({ role: m.role, content: m.content });
  }
  const s = c.settings;
  return {
    model: props?.model, messages, stream: true, stream_options: { include_usage: true },
    temperature: s.temperature, top_p: s.top_p, top_k: s.top_k, max_tokens: s.max_tokens,
  };
}

/** Streams the assistant's answer to the conversation's last user message. */
async function answer(c) {
  if (running) return;
  showNotice('');
  const msg = { role: 'assistant', content: '' };
  c.messages.push(msg);
  const controller = new AbortController();
  running = { controller, conv: c, msg, node: null };
  drawAll();
  let usage = null;
  let first = 0;
  let pieces = 0;
  let frame = 0;
  const redraw = () => {
    frame = 0;
    if (running?.node && currentId === c.id) {
      fillMessage(running.node, msg, false);
      ui.messages.scrollTop = ui.messages.scrollHeight;
    }
  };
  const calls = [];
  try {
    if (!props) await loadProps();
    await api.streamChat(requestBody(c), controller.signal, (chunk) => {
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices?.[0]?.delta;
      if (!delta) return;
      if (!first && (delta.content || delta.reasoning_content)) first = performance.now();
      if (typeof delta.content === 'string') msg.content += delta.content;
      if (typeof delta.reasoning_content === 'string') msg.reasoning = (msg.reasoning || '') + delta.reasoning_content;
      for (const tc of delta.tool_calls || []) {
        const k = Number.isInteger(tc.index) ? tc.index : calls.length;
        calls[k] = calls[k] || { name: '', arguments: '' };
        if (tc.function?.name) calls[k].name += tc.function.name;
        if (tc.function?.arguments) calls[k].arguments += tc.function.arguments;
        msg.tool_calls = calls.filter(Boolean);
      }
      pieces++;
      if (!frame) frame = requestAnimationFrame(redraw);
    });
    const end = performance.now();
    const tokens = usage?.completion_tokens ?? pieces;
    const secs = first ? (end - first) / 1000 : 0;
    msg.stats = {
      tps: secs > 0 && tokens > 1 ? (tokens - 1) / secs : 0,
      tokens,
      used: usage ? usage.prompt_tokens + usage.completion_tokens : 0,
      ctx: props?.n_ctx || 0,
    };
  } catch (err) {
    if (err.name === 'AbortError') {
      msg.stopped = true;
    } else if (err instanceof api.AuthError) {
      c.messages.pop();
      running = null;
      persist();
      drawAll();
      askForKey(() => answer(c));
      return;
    } else {
      msg.error = err instanceof api.ApiError ? err.message : t('networkError');
    }
  } finally {
    if (frame) cancelAnimationFrame(frame);
  }
  running = null;
  c.updated = Date.now();
  persist();
  if (currentId === c.id) drawAll(); else drawList();
  ui.composer.focus();
}

// ---- server: key, props, health ---------------------------------------------------------

function askForKey(retry) {
  pendingAfterKey = retry;
  ui.keyMessage.textContent = api.getKey() ? t('keyRefused') : t('keyNeeded');
  ui.keyInput.value = '';
  if (!ui.dialog.open) ui.dialog.showModal();
  ui.keyInput.focus();
}

ui.keyForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return;
  api.setKey(key);
  ui.dialog.close();
  const retry = pendingAfterKey;
  pendingAfterKey = null;
  if (retry) retry();
});

async function loadProps() {
  props = await api.getJson('/props');
  ui.modelName.textContent = props.model;
  ui.modelCtx.textContent = t('context', { n: props.n_ctx });
  return props;
}

async function connect() {
  try {
    await loadProps();
    showNotice('');
  } catch (err) {
    if (err instanceof api.AuthError) askForKey(connect);
    else showNotice(t('errorPrefix') + (err instanceof api.ApiError ? err.message : t('networkError')));
  }
}

async function checkHealth() {
  const h = await api.health();
  ui.dot.className = 'dot ' + h;
  ui.dot.dataset.state = h;
  ui.dot.title = t(h === 'ok' ? 'healthOk' : h === 'draining' ? 'healthDraining' : 'healthDown');
  ui.dot.setAttribute('aria-label', ui.dot.title);
}

// ---- start ------------------------------------------------------------------------------

translatePage();
drawAll();
ui.composer.focus();
document.body.dataset.ready = 'true';
connect();
checkHealth();
setInterval(checkHealth, 10000);
