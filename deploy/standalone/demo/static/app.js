// The demo page: the same calls the Xpeditis frontend makes. The socket is
// opened exactly as the frontend opens it, io(API_URL, { auth: { token } }),
// with socket.io-client's default options; REST calls carry the token as a
// bearer.
'use strict';

const $ = (sel) => document.querySelector(sel);
const state = {
  token: null,
  user: null,
  socket: null,
  items: new Map(), // id -> notification, newest first by createdAt
  unread: 0,
  labels: {}, // event and notification type -> words (from /dev/config)
};

// label is what the page shows for a type: its words from the server, else
// the enum in sentence case (PAYMENT_FAILED -> "Payment failed").
function label(type) {
  if (state.labels[type]) return state.labels[type];
  const s = String(type).toLowerCase().replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// fieldName turns a data key into words: bookingId -> "Booking", invoice_id -> "Invoice".
function fieldName(key) {
  const words = key.replace(/[_-]+/g, ' ').replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase().replace(/ id$/, '').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// formatData lists an event's data as [name, value] pairs in words: an
// amount with its currency as money, nested values flattened, no JSON.
function formatData(data) {
  const out = [];
  const money = typeof data.amount === 'number' && typeof data.currency === 'string';
  for (const [k, v] of Object.entries(data)) {
    if (money && k === 'currency') continue;
    let value;
    if (money && k === 'amount') {
      try {
        value = new Intl.NumberFormat(undefined, { style: 'currency', currency: data.currency }).format(v);
      } catch {
        value = `${v} ${data.currency}`;
      }
    } else if (v === null || v === undefined) {
      value = '—';
    } else if (typeof v === 'boolean') {
      value = v ? 'yes' : 'no';
    } else if (Array.isArray(v)) {
      value = v.map((x) => (typeof x === 'object' ? formatData(x || {}).map(([a, b]) => `${a}: ${b}`).join(', ') : String(x))).join('; ');
    } else if (typeof v === 'object') {
      value = formatData(v).map(([a, b]) => `${a}: ${b}`).join(', ');
    } else if (typeof v === 'string' && /^[A-Z][A-Z0-9_]+$/.test(v)) {
      value = label(v); // an enum value such as BILL_OF_LADING
    } else {
      value = String(v);
    }
    out.push([fieldName(k), value]);
  }
  return out;
}

const priorityWords = { LOW: 'Low', MEDIUM: 'Normal', HIGH: 'High', URGENT: 'Urgent' };

// Why a connection ended, in words (socket.io-client's disconnect reasons).
const disconnectWords = {
  'transport close': 'The connection to the server was lost (the server restarted, or the network dropped). Reconnecting by itself; notifications sent meanwhile will be delivered.',
  'transport error': 'The connection failed because of a network error. Reconnecting by itself; notifications sent meanwhile will be delivered.',
  'ping timeout': 'The server stopped answering (no heartbeat for a while). Reconnecting by itself; notifications sent meanwhile will be delivered.',
  'parse error': 'The server sent something this page could not read, so the connection was closed. Reconnecting by itself.',
  'io server disconnect': 'The server ended this session (for example, the token expired). Sign in again to reconnect.',
  'io client disconnect': 'Disconnected.',
};

function showError(err) {
  const el = $('#error');
  el.textContent = err instanceof Error ? err.message : String(err);
  el.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: reported below */ }
  if (!res.ok) {
    throw new Error(`${method} ${path}: ${(json && (json.detail || json.title)) || res.status + ' ' + res.statusText}`);
  }
  return json;
}

function setStatus(text, kind, why = '') {
  const el = $('#status');
  el.textContent = text;
  el.dataset.state = kind;
  $('#status-why').textContent = why;
}

function setUnread(n) {
  state.unread = Math.max(0, n);
  const badge = $('#unread-count');
  badge.textContent = String(state.unread);
  badge.dataset.count = String(state.unread);
  document.title = (state.unread ? `(${state.unread}) ` : '') + 'Xpeditis Notify — demo';
}

async function refreshCount() {
  const r = await api('GET', '/api/v1/notifications/unread-count');
  setUnread(r.unreadCount);
}

async function refreshInbox() {
  const r = await api('GET', '/api/v1/notifications?limit=50');
  state.items = new Map(r.data.map((n) => [n.id, n]));
  setUnread(r.unreadCount);
  render();
}

function render() {
  const list = $('#inbox');
  const items = [...state.items.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  list.replaceChildren(...items.map(renderItem));
  $('#empty').hidden = items.length > 0;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderItem(n) {
  const li = el('li', n.read ? 'read' : 'unread');
  li.dataset.id = n.id;
  li.dataset.type = n.type;
  const title = el('div', 'title', n.title + ' ');
  title.append(el('span', 'prio prio-' + n.priority, priorityWords[n.priority] || n.priority));
  const meta = el('div', 'meta', `${label(n.type)} · ${new Date(n.createdAt).toLocaleString()}`);
  const data = el('dl', 'data');
  for (const [k, v] of formatData(n.data || {})) data.append(el('dt', '', k), el('dd', '', v));
  const actions = el('div', 'actions');
  if (!n.read) {
    const b = el('button', 'mark-read', 'Mark read');
    b.type = 'button';
    b.addEventListener('click', () => markRead(n.id).catch(showError));
    actions.append(b);
  }
  const del = el('button', 'delete', 'Delete');
  del.type = 'button';
  del.addEventListener('click', () => remove(n.id).catch(showError));
  actions.append(del);
  li.append(title, el('div', 'message', n.message), meta);
  if (data.childElementCount) li.append(data);
  li.append(actions);
  return li;
}

async function markRead(id) {
  await api('PATCH', `/api/v1/notifications/${encodeURIComponent(id)}/read`);
  const n = state.items.get(id);
  if (n && !n.read) {
    n.read = true;
    render();
  }
  await refreshCount();
}

async function remove(id) {
  await api('DELETE', `/api/v1/notifications/${encodeURIComponent(id)}`);
  state.items.delete(id);
  render();
  await refreshCount();
}

function connect() {
  // The frontend's snippet, unchanged.
  const socket = io(location.origin, { auth: { token: state.token } });
  state.socket = socket;
  socket.on('connect', () => {
    setStatus('connected', 'connected', socket.recovered ? 'Reconnected: the notifications sent while the connection was down have been delivered.' : '');
    // Without recovery, messages may have been missed: the inbox is
    // refetched, as the design asks of clients.
    if (!socket.recovered) refreshInbox().catch(showError);
  });
  socket.on('disconnect', (reason) => setStatus(socket.active ? 'connection lost' : 'disconnected', 'disconnected',
    disconnectWords[reason] || `The connection ended (${reason}).`));
  socket.io.on('reconnect_attempt', (n) => setStatus(`reconnecting (attempt ${n})…`, 'connecting', $('#status-why').textContent));
  socket.on('connect_error', (err) => {
    if (socket.active) {
      setStatus('cannot reach the server', 'disconnected', 'The server cannot be reached right now; this page keeps trying to reconnect.');
    } else {
      setStatus('refused', 'refused', `The server refused the connection: ${err.message}. Sign in again.`);
    }
  });
  socket.on('notification', (n) => {
    const isNew = !state.items.has(n.id);
    state.items.set(n.id, n);
    if (isNew && !n.read) setUnread(state.unread + 1);
    render();
  });
  socket.on('notification:read', (m) => {
    const n = state.items.get(m.id);
    if (n && !n.read) {
      n.read = true;
      n.readAt = m.readAt;
      setUnread(state.unread - 1);
      render();
    }
  });
  socket.on('notification:deleted', (m) => {
    const n = state.items.get(m.id);
    if (n) {
      state.items.delete(m.id);
      if (!n.read) setUnread(state.unread - 1);
      render();
    }
  });
  socket.on('notification:read-all', () => refreshInbox().catch(showError));
}

async function signIn(userId) {
  if (state.socket) {
    state.socket.disconnect();
    state.socket = null;
  }
  state.items.clear();
  render();
  state.token = null;
  const t = await api('POST', '/dev/token', { userId });
  state.token = t.token;
  state.user = t;
  $('#who').textContent = `Signed in as ${t.userId} (${t.role}, ${t.organizationId}); token valid until ${new Date(t.expiresAt).toLocaleString()}.`;
  // The portal signs in with the same token, handed over in the fragment,
  // which never reaches a server log or a Referer.
  const portal = $('#portal-link');
  portal.href = '/portal/#token=' + encodeURIComponent(t.token);
  portal.hidden = false;
  for (const id of ['#publish', '#mark-all', '#refresh']) $(id).disabled = false;
  setStatus('connecting…', 'connecting');
  connect();
}

async function publish(type) {
  const r = await api('POST', '/dev/events', { type });
  $('#publish-result').textContent = `Published “${label(r.type)}” (event ${r.id}).`;
}

async function init() {
  const cfg = await api('GET', '/dev/config');
  state.labels = cfg.labels || {};
  const users = $('#user-select');
  for (const u of cfg.users) {
    const o = el('option', '', u.name);
    o.value = u.id;
    users.append(o);
  }
  const types = $('#event-type');
  for (const t of cfg.eventTypes) {
    const o = el('option', '', label(t));
    o.value = t;
    types.append(o);
  }
  $('#signin').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn(users.value).catch(showError);
  });
  $('#publish-form').addEventListener('submit', (e) => {
    e.preventDefault();
    publish(types.value).catch(showError);
  });
  $('#mark-all').addEventListener('click', () =>
    api('PATCH', '/api/v1/notifications/read-all').then(refreshInbox).catch(showError));
  $('#refresh').addEventListener('click', () => refreshInbox().catch(showError));
  render();
}

init().catch(showError);
