// The page's words in Korean and English. The language follows the browser: Korean when
// its first preferred language is Korean, English otherwise.

const en = {
  newChat: 'New chat',
  conversations: 'Conversations',
  exportAll: 'Export',
  importFile: 'Import',
  importDone: 'Imported {n} conversation(s).',
  importFailed: 'That file holds no jikji conversations.',
  untitled: 'New conversation',
  rename: 'Conversation title',
  deleteConv: 'Delete conversation',
  settings: 'Settings',
  systemPrompt: 'System prompt',
  systemPlaceholder: 'Instructions the model follows in this conversation',
  temperature: 'Temperature',
  topP: 'Top-p',
  topK: 'Top-k',
  maxTokens: 'Max tokens',
  composer: 'Message jikji…',
  composerHint: 'Enter sends · Shift+Enter new line',
  send: 'Send',
  stop: 'Stop',
  copy: 'Copy',
  copied: 'Copied',
  edit: 'Edit',
  save: 'Save and send',
  cancel: 'Cancel',
  regenerate: 'Regenerate',
  reasoning: 'Reasoning',
  toolCall: 'Tool call',
  you: 'You',
  assistant: 'jikji',
  stopped: 'stopped',
  stats: '{tps} tok/s · {n} tokens · context {used}/{ctx} ({pct}%)',
  statsNoCtx: '{tps} tok/s · {n} tokens',
  model: 'Model',
  context: 'context {n} tokens',
  healthOk: 'Server healthy',
  healthDown: 'Server unreachable',
  healthDraining: 'Server shutting down',
  keyTitle: 'API key needed',
  keyNeeded: 'This server asks for an API key. It is kept only in this tab (sessionStorage).',
  keyRefused: 'The server refused this key (401). Check it and try again.',
  keyLabel: 'API key',
  keySubmit: 'Connect',
  errorPrefix: 'Error: ',
  networkError: 'The server could not be reached.',
  empty: 'Ask anything. Your conversations stay in this browser.',
  menu: 'Conversations',
};

const ko = {
  newChat: '새 대화',
  conversations: '대화 목록',
  exportAll: '내보내기',
  importFile: '가져오기',
  importDone: '대화 {n}개를 가져왔습니다.',
  importFailed: '이 파일에는 jikji 대화가 없습니다.',
  untitled: '새 대화',
  rename: '대화 제목',
  deleteConv: '대화 삭제',
  settings: '설정',
  systemPrompt: '시스템 프롬프트',
  systemPlaceholder: '이 대화에서 모델이 따를 지시',
  temperature: '온도',
  topP: 'Top-p',
  topK: 'Top-k',
  maxTokens: '최대 토큰',
  composer: 'jikji에게 메시지 보내기…',
  composerHint: 'Enter 보내기 · Shift+Enter 줄바꿈',
  send: '보내기',
  stop: '중지',
  copy: '복사',
  copied: '복사됨',
  edit: '수정',
  save: '저장 후 보내기',
  cancel: '취소',
  regenerate: '다시 생성',
  reasoning: '추론 과정',
  toolCall: '도구 호출',
  you: '나',
  assistant: 'jikji',
  stopped: '중지됨',
  stats: '초당 {tps} 토큰 · {n} 토큰 · 컨텍스트 {used}/{ctx} ({pct}%)',
  statsNoCtx: '초당 {tps} 토큰 · {n} 토큰',
  model: '모델',
  context: '컨텍스트 {n} 토큰',
  healthOk: '서버 정상',
  healthDown: '서버에 연결할 수 없음',
  healthDraining: '서버 종료 중',
  keyTitle: 'API 키 필요',
  keyNeeded: '이 서버는 API 키를 요구합니다. 키는 이 탭에만 보관됩니다(sessionStorage).',
  keyRefused: '서버가 이 키를 거부했습니다(401). 확인 후 다시 입력하세요.',
  keyLabel: 'API 키',
  keySubmit: '연결',
  errorPrefix: '오류: ',
  networkError: '서버에 연결할 수 없습니다.',
  empty: '무엇이든 물어보세요. 대화는 이 브라우저에만 저장됩니다.',
  menu: '대화 목록',
};

function pickLanguage() {
  const prefs = (navigator.languages && navigator.languages.length) ? navigator.languages : [navigator.language || 'en'];
  return String(prefs[0] || 'en').toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

export const lang = pickLanguage();
const words = lang === 'ko' ? ko : en;

/** The text for `key`, with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const s = words[key] ?? en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** Fills `data-i18n` (text), `data-i18n-placeholder`, `-title` and `-aria` attributes. */
export function translatePage(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
}
