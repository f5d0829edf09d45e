// A small Markdown renderer that builds DOM nodes and never parses text as HTML.
//
// Model output is untrusted: every piece of it reaches the page as a Text node
// (`createTextNode` / `textContent`), so `<script>`, `<img onerror>` and the like are shown
// as the characters they are. Links are made only for http(s) and mailto addresses, set
// through the `href` property; images are shown as their alt text plus address (an <img>
// would fetch from another origin). The subset is what chat models write: headings,
// paragraphs with line breaks, emphasis, inline code, fenced code blocks (with a copy
// button), ordered and unordered lists (nested by indentation), tables, block quotes and
// rules. An unterminated code fence renders as code, so a streamed answer looks right
// while it is still arriving.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
const SAFE_URL = /^(https?:\/\/|mailto:)/i;

/**
 * Renders `src` into a DocumentFragment.
 * @param {string} src Markdown text (untrusted).
 * @param {{copyLabel?: string}} opts
 */
export function renderMarkdown(src, opts = {}) {
  const frag = document.createDocumentFragment();
  const lines = String(src ?? '').replace(/\r\n?/g, '\n').split('\n');
  renderBlocks(lines, frag, opts, 0);
  return frag;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function isBlockStart(line, next) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    ITEM.test(line) || (line.includes('|') && next !== undefined && TABLE_SEP.test(next) && next.includes('-'));
}

function renderBlocks(lines, parent, opts, depth) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === '') { i++; continue; }
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i++;
      while (i < lines.length && !(lines[i].trim().startsWith(fence[0].repeat(fence.length)) && lines[i].trim().replace(/[`~]/g, '') === '')) {
        body.push(lines[i]);
        i++;
      }
      i++; // the closing fence (or the end)
      parent.append(codeBlock(body.join('\n'), m[2], opts));
      continue;
    }
    if ((m = HEADING.exec(line))) {
      const h = el('h' + m[1].length);
      inline(m[2], h);
      parent.append(h);
      i++;
      continue;
    }
    if (RULE.test(line)) { parent.append(el('hr')); i++; continue; }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) { inner.push(m[1]); i++; }
      const q = el('blockquote');
      if (depth < 8) renderBlocks(inner, q, opts, depth + 1); else q.textContent = inner.join('\n');
      parent.append(q);
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      const rows = [line];
      const sep = lines[i + 1];
      i += 2;
      while (i < lines.length && lines[i].includes('|') && lines[i].trim() !== '') { rows.push(lines[i]); i++; }
      parent.append(table(rows, sep));
      continue;
    }
    if ((m = ITEM.exec(line))) {
      i = list(lines, i, parent, opts, depth);
      continue;
    }
    // A paragraph: lines up to a blank line or the start of another block.
    const para = [line];
    i++;
    while (i < lines.length && lines[i].trim() !== '' && !isBlockStart(lines[i], lines[i + 1])) { para.push(lines[i]); i++; }
    const p = el('p');
    inline(para.map((l) => l.trim()).join('\n'), p);
    parent.append(p);
  }
}

function list(lines, start, parent, opts, depth) {
  const first = ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const listEl = el(ordered ? 'ol' : 'ul');
  if (ordered) {
    const n = parseInt(first[2], 10);
    if (Number.isFinite(n) && n !== 1) listEl.start = n;
  }
  let i = start;
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const body = [m[3]];
    i++;
    // Continuation: indented lines (nested lists included) and blank lines between them.
    while (i < lines.length) {
      const l = lines[i];
      const lead = l.length - l.trimStart().length;
      if (l.trim() === '') {
        const next = lines[i + 1];
        if (next !== undefined && next.trim() !== '' && next.length - next.trimStart().length > indent) { body.push(''); i++; continue; }
        break;
      }
      if (lead > indent) { body.push(l.slice(Math.min(lead, indent + 2))); i++; continue; }
      if (ITEM.test(l)) break;
      if (isBlockStart(l, lines[i + 1])) break;
      body.push(l); // a lazy continuation of the item's paragraph
      i++;
    }
    const li = el('li');
    const nested = body.slice(1).some((l) => ITEM.test(l) || FENCE.test(l));
    if (!nested && !body.includes('')) inline(body.map((l) => l.trim()).join('\n'), li);
    else if (depth < 8) renderBlocks(body, li, opts, depth + 1);
    else li.textContent = body.join('\n');
    listEl.append(li);
    // A blank line followed by another item of this list keeps the list going.
    while (i < lines.length && lines[i].trim() === '' && lines[i + 1] !== undefined) {
      const n = ITEM.exec(lines[i + 1]);
      if (n && n[1].length === indent && /\d/.test(n[2]) === ordered) i++; else break;
    }
  }
  parent.append(listEl);
  return i;
}

function splitRow(row) {
  let s = row.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  for (let k = 0; k < s.length; k++) {
    if (s[k] === '\\' && s[k + 1] === '|') { cur += '|'; k++; continue; }
    if (s[k] === '|') { cells.push(cur.trim()); cur = ''; continue; }
    cur += s[k];
  }
  cells.push(cur.trim());
  return cells;
}

function table(rows, sep) {
  const align = splitRow(sep).map((c) => (c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : c.startsWith(':') ? 'left' : ''));
  const wrap = el('div', 'table-wrap');
  const tbl = el('table');
  const head = el('thead');
  const body = el('tbody');
  rows.forEach((row, r) => {
    const tr = el('tr');
    splitRow(row).forEach((cell, c) => {
      const td = el(r === 0 ? 'th' : 'td');
      if (align[c]) td.classList.add('align-' + align[c]);
      inline(cell, td);
      tr.append(td);
    });
    (r === 0 ? head : body).append(tr);
  });
  tbl.append(head, body);
  wrap.append(tbl);
  return wrap;
}

function codeBlock(text, language, opts) {
  const box = el('div', 'code-block');
  const bar = el('div', 'code-bar');
  bar.append(el('span', 'code-lang', language || ''));
  const copy = el('button', 'copy', opts.copyLabel || 'Copy');
  copy.type = 'button';
  copy.dataset.action = 'copy-code';
  bar.append(copy);
  const pre = el('pre');
  const code = el('code', null, text);
  pre.append(code);
  box.append(bar, pre);
  return box;
}

// Inline spans, earliest match first: code, images, links, strong, emphasis, strike,
// escapes. Anything unmatched is text.
const INLINE = new RegExp([
  '(`+)([\\s\\S]*?[^`])\\1(?!`)', // 1,2 code
  '!\\[([^\\]]*)\\]\\(([^)\\s]*)(?:\\s+"[^"]*")?\\)', // 3,4 image
  '\\[([^\\]]+)\\]\\(([^)\\s]*)(?:\\s+"[^"]*")?\\)', // 5,6 link
  '\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*', // 7 strong
  '__(?=\\S)([\\s\\S]*?\\S)__', // 8 strong
  '\\*(?=[^\\s*])([\\s\\S]*?[^\\s*])\\*', // 9 emphasis
  '(?<![\\w])_(?=\\S)([^_]*?\\S)_(?![\\w])', // 10 emphasis
  '~~(?=\\S)([\\s\\S]*?\\S)~~', // 11 strike
  '\\\\([\\\\`*_{}\\[\\]()#+\\-.!|~<>])', // 12 escape
].join('|'));

function text(s, parent) {
  const parts = s.split('\n');
  parts.forEach((part, k) => {
    if (k > 0) parent.append(el('br'));
    if (part) parent.append(document.createTextNode(part));
  });
}

function inline(s, parent, depth = 0) {
  let rest = s;
  while (rest) {
    const m = depth < 6 ? INLINE.exec(rest) : null;
    if (!m) { text(rest, parent); return; }
    if (m.index > 0) text(rest.slice(0, m.index), parent);
    if (m[2] !== undefined) {
      parent.append(el('code', null, m[2].replace(/^ (.*) $/, '$1')));
    } else if (m[4] !== undefined) {
      // Never fetched: alt text and the address, as text.
      parent.append(el('span', 'image-ref', `[${m[3] || 'image'}: ${m[4]}]`));
    } else if (m[6] !== undefined) {
      if (SAFE_URL.test(m[6])) {
        const a = el('a');
        a.href = m[6];
        a.rel = 'noopener noreferrer nofollow';
        a.target = '_blank';
        inline(m[5], a, depth + 1);
        parent.append(a);
      } else {
        text(m[0], parent);
      }
    } else if (m[7] !== undefined || m[8] !== undefined) {
      const b = el('strong');
      inline(m[7] ?? m[8], b, depth + 1);
      parent.append(b);
    } else if (m[9] !== undefined || m[10] !== undefined) {
      const e = el('em');
      inline(m[9] ?? m[10], e, depth + 1);
      parent.append(e);
    } else if (m[11] !== undefined) {
      const d = el('del');
      inline(m[11], d, depth + 1);
      parent.append(d);
    } else {
      parent.append(document.createTextNode(m[12]));
    }
    rest = rest.slice(m.index + m[0].length);
  }
}
