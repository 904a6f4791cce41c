// The webhook portal. It signs in by exchanging the token the host
// application put in the URL fragment (#token=…) for a session cookie
// (POST /portal/session), then calls the webhook API under
// /portal/api/webhooks with that cookie. Nothing here is inline in the page:
// the Content-Security-Policy allows scripts from /portal/assets only.
'use strict';

const API = '/portal/api/webhooks';
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

const state = {
  session: null, // {userId, organizationId, role, expiresAt, events}
  webhook: null, // the webhook on screen
  deliveriesCursor: null,
  deliveriesSeq: 0,
  listCursor: null,
  descriptions: {}, // webhook event -> what it means (the event catalogue)
};

// ApiError is an answer other than 2xx: its problem detail, and the form
// field the detail is about ("url: must start with https://" is about url).
class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    const m = /^([a-zA-Z]+): (.*)$/s.exec(detail);
    this.field = m ? m[1] : '';
    this.fieldMessage = m ? m[2] : detail;
  }
}

async function request(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'The server cannot be reached. Check your connection and try again.');
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: described below */ }
  if (!res.ok) {
    const detail = (json && (json.detail || json.title)) || `${res.status} ${res.statusText}`;
    const err = new ApiError(res.status, detail);
    if (res.status === 401) signedOut(detail);
    throw err;
  }
  return json;
}

const api = (method, path, body) => request(method, API + path, body);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

function when(t) {
  return t ? new Date(t).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }) : '—';
}

// ---- forms: errors next to their field ----

function clearErrors(form) {
  for (const p of $$('.field-error, .form-error', form)) p.textContent = '';
  for (const i of $$('[aria-invalid]', form)) i.removeAttribute('aria-invalid');
}

function showError(form, err) {
  const msg = err instanceof ApiError ? err : new ApiError(0, String(err && err.message || err));
  const target = msg.field && $(`.field-error[data-field="${msg.field}"]`, form);
  if (target) {
    target.textContent = msg.fieldMessage;
    const input = $(`[name="${msg.field}"]`, form) || $(`[data-events] input`, form);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
    return;
  }
  const general = $('.form-error[data-field=""]', form) || form;
  general.textContent = msg.message;
}

// busy disables a button while its request runs.
async function busy(button, fn) {
  button.disabled = true;
  try {
    return await fn();
  } finally {
    button.disabled = false;
  }
}

function renderEventChoices(container, chosen) {
  const kind = container.dataset.events;
  container.replaceChildren(...state.session.events.map((name) => {
    const id = `${kind}-event-${name}`;
    const box = el('input', { type: 'checkbox', id, name: 'events', value: name, checked: chosen.includes(name) });
    return el('label', { class: 'check', htmlFor: id, title: state.descriptions[name] }, box, ' ' + eventLabel(name));
  }));
}

function chosenEvents(form) {
  return $$('[data-events] input:checked', form).map((i) => i.value);
}

// eventLabel turns BOOKING_CREATED into "Booking created".
function eventLabel(name) {
  const words = name.toLowerCase().split('_');
  return [words[0][0].toUpperCase() + words[0].slice(1), ...words.slice(1)].join(' ');
}

// ---- views ----

function show(view) {
  for (const s of $$('main > section')) s.hidden = s.id !== view;
  $('#loading').hidden = true;
}

function signedOut(reason) {
  state.session = null;
  $('#who').hidden = true;
  $('#sign-out').hidden = true;
  $('#signed-out-reason').textContent = reason || '';
  show('view-signed-out');
}

function showSession(s) {
  state.session = s;
  const who = $('#who');
  who.textContent = `${s.userId} · ${s.role} · ${s.organizationId}`;
  who.title = `Session until ${when(s.expiresAt)}`;
  who.hidden = false;
  $('#sign-out').hidden = false;
  const filter = $('#filter-event');
  filter.replaceChildren(el('option', { value: '', text: 'all' }),
    ...s.events.map((name) => el('option', { value: name, text: eventLabel(name) })));
}

async function route() {
  if (!state.session) return;
  const hash = location.hash || '#/';
  const m = /^#\/webhooks\/([^/]+)$/.exec(hash);
  try {
    if (hash === '#/new') showCreate();
    else if (m) await showWebhook(decodeURIComponent(m[1]));
    else await showList();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      $('#missing-reason').textContent = 'This webhook does not exist in your organization.';
      show('view-missing');
    } else if (!(err instanceof ApiError && err.status === 401)) {
      $('#missing-reason').textContent = err.message;
      show('view-missing');
    }
  }
}

// ---- list ----

async function showList() {
  const page = await api('GET', '?limit=50');
  state.listCursor = page.nextCursor;
  $('#webhooks').replaceChildren(...page.data.map(webhookCard));
  $('#no-webhooks').hidden = page.data.length > 0;
  $('#more-webhooks').hidden = !page.nextCursor;
  show('view-list');
}

async function moreWebhooks() {
  const page = await api('GET', `?limit=50&cursor=${encodeURIComponent(state.listCursor)}`);
  state.listCursor = page.nextCursor;
  $('#webhooks').append(...page.data.map(webhookCard));
  $('#more-webhooks').hidden = !page.nextCursor;
}

function statusBadge(status) {
  return el('span', { class: 'status', 'data-status': status, text: { ACTIVE: 'active', INACTIVE: 'disabled', FAILED: 'failing: disabled' }[status] || status });
}

function webhookCard(w) {
  const link = el('a', { href: `#/webhooks/${encodeURIComponent(w.id)}`, class: 'url', text: w.url });
  return el('li', { class: 'card', 'data-id': w.id },
    el('div', { class: 'card-head' }, link, statusBadge(w.status)),
    w.description ? el('p', { class: 'hint', text: w.description }) : null,
    el('p', { class: 'tags' }, ...w.events.map((e) => el('span', { class: 'tag', text: eventLabel(e) }))),
    el('p', { class: 'hint', text: `secret ${w.secretHint} · ${w.failureCount} failure${w.failureCount === 1 ? '' : 's'} in a row · created ${when(w.createdAt)}` }));
}

// ---- create ----

function showCreate() {
  const form = $('#create-form');
  form.reset();
  clearErrors(form);
  renderEventChoices($('[data-events]', form), []);
  show('view-new');
  $('#create-url').focus();
}

async function create(e) {
  e.preventDefault();
  const form = e.currentTarget;
  clearErrors(form);
  const body = { url: form.url.value, events: chosenEvents(form), description: form.description.value };
  if (form.secret.value !== '') body.secret = form.secret.value;
  try {
    const w = await busy($('button[type=submit]', form), () => api('POST', '', body));
    showSecret('Webhook created', w.secret, w.id, '');
  } catch (err) {
    showError(form, err);
  }
}

// showSecret shows a secret this once; nothing keeps it after the page
// moves on.
function showSecret(title, secret, id, switchNote) {
  $('#secret-title').textContent = title;
  $('#secret-value').textContent = secret;
  $('#copy-result').textContent = '';
  $('#secret-switch').textContent = switchNote;
  $('#secret-done').href = `#/webhooks/${encodeURIComponent(id)}`;
  show('view-secret');
  // Forget it once the user leaves the view.
  window.addEventListener('hashchange', forgetSecret, { once: true });
}

function forgetSecret() {
  $('#secret-value').textContent = '';
}

// secretDone leaves the secret's view; after a rotation the address is
// already the webhook's, so no hashchange would redraw it.
function secretDone(e) {
  if (location.hash === e.currentTarget.getAttribute('href')) {
    e.preventDefault();
    window.removeEventListener('hashchange', forgetSecret);
    forgetSecret();
    route();
  }
}

async function copySecret() {
  const secret = $('#secret-value').textContent;
  try {
    await navigator.clipboard.writeText(secret);
    $('#copy-result').textContent = 'Copied to the clipboard.';
  } catch {
    // No clipboard access (an insecure origin, a refused permission):
    // select the text so that the user can copy it by hand.
    const range = document.createRange();
    range.selectNodeContents($('#secret-value'));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    $('#copy-result').textContent = 'The browser did not allow copying: the secret is selected, copy it with Ctrl+C (⌘C).';
  }
}

// ---- one webhook ----

async function showWebhook(id) {
  const w = await api('GET', `/${encodeURIComponent(id)}`);
  renderWebhook(w);
  const form = $('#edit-form');
  clearErrors(form);
  form.url.value = w.url;
  form.description.value = w.description;
  renderEventChoices($('[data-events]', form), w.events);
  $('.saved', form).textContent = '';
  $('#test-result').hidden = true;
  for (const id of ['#status-error', '#delete-error', '#deliveries-error']) $(id).textContent = '';
  for (const f of ['#rotate-form', '#recover-form']) clearErrors($(f));
  $('#recover-progress').textContent = '';
  show('view-webhook');
  await Promise.all([loadDeliveries(false), loadHealth()]);
}

// loadHealth shows the last 24 hours of the webhook (GET …/stats).
async function loadHealth() {
  const box = $('#wh-health');
  let s;
  try {
    s = await api('GET', `/${state.webhook.id}/stats`);
  } catch (err) {
    box.replaceChildren(el('p', { class: 'bad', text: 'Health unavailable: ' + err.message }));
    box.hidden = false;
    return;
  }
  const figure = (name, value, title) => el('div', { title }, el('strong', { text: value }), el('span', { class: 'hint', text: name }));
  const pct = s.successRate === null ? '—' : `${(s.successRate * 100).toFixed(s.successRate === 1 ? 0 : 1)} %`;
  const rt = s.responseTimeMs ? `${Math.round(s.responseTimeMs.p50)} / ${Math.round(s.responseTimeMs.p95)} ms` : '—';
  box.replaceChildren(
    figure('success rate, 24 h', pct, 'Attempts answered with 2xx, out of all attempts of the last 24 hours'),
    figure('attempts, 24 h', String(s.attempts)),
    figure('response p50 / p95', rt, 'Response time of the answered attempts'),
    figure(`deliveries, 24 h: ${s.deliveries.succeeded} delivered, ${s.deliveries.failed} failed, ${s.deliveries.pending} pending`, String(s.deliveries.total)));
  if (s.lastError) {
    const a = s.lastError;
    box.append(el('div', { class: 'last-error' }, el('span', { class: 'hint', text: `last error, ${when(a.at)}` }),
      el('strong', { class: 'bad', text: a.error || (a.statusCode ? `HTTP ${a.statusCode}` : outcomeWords[a.outcome] || a.outcome) })));
  }
  box.hidden = false;
}

// ---- rotation ----

async function rotate(e) {
  e.preventDefault();
  const form = e.currentTarget;
  clearErrors(form);
  try {
    const r = await busy($('button[type=submit]', form), () => api('POST', `/${state.webhook.id}/rotate-secret`, { overlap: form.overlap.value }));
    renderWebhook(r.webhook);
    const note = r.previousSecretExpiresAt
      ? `The previous secret keeps signing until ${when(r.previousSecretExpiresAt)}: until then X-Webhook-Signature is made with it and webhook-signature carries both signatures. Give your receiver the new secret before then.`
      : 'The previous secret no longer signs: deliveries from now on carry the new secret\'s signatures only.';
    showSecret('Secret rotated', r.secret, state.webhook.id, note);
  } catch (err) {
    showError(form, err);
  }
}

// ---- recovery ----

// isoOf reads a datetime-local field (the browser's time zone) as RFC 3339.
function isoOf(input) {
  return input.value ? new Date(input.value).toISOString() : undefined;
}

async function recover(e) {
  e.preventDefault();
  const form = e.currentTarget;
  clearErrors(form);
  $('#recover-progress').textContent = '';
  if (!form.since.value) {
    showError(form, new ApiError(400, 'since: give the time from which to send the events again'));
    return;
  }
  const button = $('button[type=submit]', form);
  try {
    let r = await busy(button, () => api('POST', `/${state.webhook.id}/recover`, { since: isoOf(form.since), until: isoOf(form.until) }));
    const webhookId = state.webhook.id;
    button.disabled = true;
    try {
      while (r.status === 'RUNNING' && state.webhook && state.webhook.id === webhookId) {
        showRecovery(r);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        r = await api('GET', `/${webhookId}/recoveries/${r.id}`);
      }
    } finally {
      button.disabled = false;
    }
    showRecovery(r);
    await loadDeliveries(false);
  } catch (err) {
    showError(form, err);
  }
}

function showRecovery(r) {
  const p = $('#recover-progress');
  p.dataset.status = r.status;
  const counts = `${r.eventsScanned} event${r.eventsScanned === 1 ? '' : 's'} read, ${r.deliveriesCreated} deliver${r.deliveriesCreated === 1 ? 'y' : 'ies'} created (${r.deliveries.succeeded} delivered, ${r.deliveries.pending} pending, ${r.deliveries.failed} failed)`;
  p.textContent = {
    RUNNING: `Recovering… ${counts}.`,
    SUCCEEDED: `Recovery finished: ${counts}.`,
    FAILED: `Recovery failed: ${r.error || 'no reason given'}. ${counts}.`,
  }[r.status] || `${r.status}: ${counts}`;
}

function renderWebhook(w) {
  state.webhook = w;
  $('#wh-title').textContent = w.url;
  $('#wh-status').replaceWith(Object.assign(statusBadge(w.status), { id: 'wh-status' }));
  const previous = w.previousSecretExpiresAt && new Date(w.previousSecretExpiresAt) > new Date()
    ? ` (the previous secret also signs until ${when(w.previousSecretExpiresAt)})` : '';
  $('#wh-meta').textContent = `${w.description ? w.description + ' · ' : ''}secret ${w.secretHint}${previous} · ${w.failureCount} failure${w.failureCount === 1 ? '' : 's'} in a row · updated ${when(w.updatedAt)}`;
  const toggle = $('#toggle-status');
  toggle.textContent = w.status === 'ACTIVE' ? 'Disable' : 'Enable';
  toggle.dataset.next = w.status === 'ACTIVE' ? 'INACTIVE' : 'ACTIVE';
}

async function save(e) {
  e.preventDefault();
  const form = e.currentTarget;
  clearErrors(form);
  $('.saved', form).textContent = '';
  const body = { url: form.url.value, events: chosenEvents(form), description: form.description.value };
  try {
    const w = await busy($('button[type=submit]', form), () => api('PATCH', `/${state.webhook.id}`, body));
    renderWebhook(w);
    $('.saved', form).textContent = 'Saved.';
  } catch (err) {
    showError(form, err);
  }
}

async function toggleStatus(e) {
  $('#status-error').textContent = '';
  try {
    const w = await busy(e.currentTarget, () => api('PATCH', `/${state.webhook.id}`, { status: e.currentTarget.dataset.next }));
    renderWebhook(w);
  } catch (err) {
    $('#status-error').textContent = err.message;
  }
}

async function sendTest(e) {
  const out = $('#test-result');
  out.hidden = true;
  try {
    const r = await busy(e.currentTarget, () => api('POST', `/${state.webhook.id}/test`));
    const head = r.success
      ? `Delivered: HTTP ${r.statusCode} in ${r.durationMs} ms`
      : `Failed${r.statusCode ? ': HTTP ' + r.statusCode : ''}${r.error ? ': ' + r.error : ''} (${r.durationMs} ms)`;
    out.replaceChildren(el('p', { class: r.success ? 'ok' : 'bad', text: head }),
      el('p', { class: 'hint', text: 'Response body (first 4 KB):' }),
      el('pre', { class: 'excerpt', text: r.responseExcerpt || '(empty)' }));
    out.dataset.success = String(r.success);
  } catch (err) {
    out.replaceChildren(el('p', { class: 'bad', text: err.message }));
    out.dataset.success = 'false';
  }
  out.hidden = false;
}

async function remove(e) {
  $('#delete-error').textContent = '';
  if (!confirm(`Delete the webhook to ${state.webhook.url} and its delivery log?`)) return;
  try {
    await busy(e.currentTarget, () => api('DELETE', `/${state.webhook.id}`));
    location.hash = '#/';
  } catch (err) {
    $('#delete-error').textContent = err.message;
  }
}

// ---- deliveries ----

async function loadDeliveries(more) {
  // Only the answer to the latest request is shown: an earlier one (a
  // refresh, the previous filter) may arrive after it.
  const seq = ++state.deliveriesSeq;
  const f = $('#delivery-filters');
  const q = new URLSearchParams({ limit: '20' });
  if (f.status.value) q.set('status', f.status.value);
  if (f.event.value) q.set('event', f.event.value);
  if (more) q.set('cursor', state.deliveriesCursor);
  $('#deliveries-error').textContent = '';
  try {
    const page = await api('GET', `/${state.webhook.id}/deliveries?${q}`);
    if (seq !== state.deliveriesSeq) return;
    state.deliveriesCursor = page.nextCursor;
    const items = page.data.map(deliveryItem);
    if (more) $('#deliveries').append(...items);
    else $('#deliveries').replaceChildren(...items);
    $('#no-deliveries').hidden = $('#deliveries').children.length > 0;
    $('#more-deliveries').hidden = !page.nextCursor;
  } catch (err) {
    $('#deliveries-error').textContent = err.message;
  }
}

const statusWords = { SUCCEEDED: 'succeeded', FAILED: 'failed', PENDING: 'pending' };
const outcomeWords = {
  success: 'success', http_error: 'HTTP error', timeout: 'timed out', refused: 'refused (address not allowed)',
  network_error: 'network error', redirect: 'redirect (not followed)', cancelled: 'cancelled',
  not_sent: 'not sent', started: 'in progress', interrupted: 'interrupted (the dispatcher stopped)',
};

function deliveryItem(d) {
  const last = d.attempts[d.attempts.length - 1];
  const summary = el('summary', {},
    el('span', { class: 'status', 'data-status': d.status, text: statusWords[d.status] || d.status }),
    el('span', { class: 'event', text: eventLabel(d.event) }),
    el('span', { class: 'hint', text: `${when(d.createdAt)} · ${d.attempts.length} attempt${d.attempts.length === 1 ? '' : 's'}${last && last.statusCode ? ' · HTTP ' + last.statusCode : ''}` }));
  const body = el('div', { class: 'delivery-body' },
    el('p', { class: 'hint', text: `Delivery ${d.id} · event ${d.eventId}${d.nextAttemptAt ? ' · next attempt ' + when(d.nextAttemptAt) : ''}` }),
    el('ol', { class: 'attempts' }, ...d.attempts.map((a) => attemptItem(d, a))));
  if (d.status !== 'PENDING') {
    const retry = el('button', { type: 'button', class: 'retry', text: 'Send again now' });
    const err = el('p', { class: 'form-error', role: 'alert' });
    retry.addEventListener('click', async () => {
      err.textContent = '';
      try {
        const nd = await busy(retry, () => api('POST', `/${state.webhook.id}/deliveries/${d.id}/retry`));
        const li = deliveryItem(nd);
        $('details', li).open = true;
        item.replaceWith(li);
      } catch (e) {
        err.textContent = e.message;
      }
    });
    body.append(el('div', { class: 'actions' }, retry), err);
  }
  const item = el('li', { class: 'delivery', 'data-id': d.id, 'data-status': d.status, 'data-event': d.event },
    el('details', {}, summary, body));
  return item;
}

// requestHeaders lists the headers an attempt carried (pkg/webhook
// SetHeaders). The signatures are not kept: they are HMACs of the body
// with the secret of the moment, recomputed by the receiver.
function requestHeaders(d, a) {
  const ts = String(Math.floor(new Date(a.at).getTime() / 1000));
  return [
    ['Content-Type', 'application/json'],
    ['User-Agent', 'Xpeditis-Webhooks/1'],
    ['X-Webhook-Event', d.event],
    ['X-Webhook-Id', d.id],
    ['X-Webhook-Timestamp', ts],
    ['X-Webhook-Attempt', String(a.number)],
    ['X-Webhook-Signature', 'sha256=… (HMAC-SHA256 of the body with the secret)'],
    ['webhook-id', d.id],
    ['webhook-timestamp', ts],
    ['webhook-signature', 'v1,… (Standard Webhooks signature)'],
  ].map(([k, v]) => `${k}: ${v}`).join('\n');
}

function attemptItem(d, a) {
  const what = [a.statusCode ? `HTTP ${a.statusCode}` : outcomeWords[a.outcome] || a.outcome];
  if (a.outcome === 'success') what.unshift('success');
  what.push(`${a.durationMs} ms`);
  if (a.manual) what.push('sent by hand');
  return el('li', { class: 'attempt', 'data-outcome': a.outcome },
    el('p', {}, el('strong', { text: `Attempt ${a.number}` }), ` · ${when(a.at)} · ${what.join(' · ')}`),
    a.error && a.error !== `HTTP ${a.statusCode}` ? el('p', { class: 'bad', text: a.error }) : null,
    el('p', { class: 'hint', text: 'Request headers' }),
    el('pre', { class: 'headers', text: requestHeaders(d, a) }),
    el('p', { class: 'hint', text: 'Response body (first 4 KB)' }),
    el('pre', { class: 'excerpt', text: a.responseExcerpt || '(empty)' }));
}

// ---- start ----

async function start() {
  // The host application hands a token over in the fragment, which no
  // server or Referer sees; take it out of the address bar and the history
  // before anything else.
  const m = /^#token=([^&]+)/.exec(location.hash);
  let s;
  try {
    if (m) {
      history.replaceState(null, '', location.pathname + location.search + '#/');
      s = await request('POST', '/portal/session', { token: decodeURIComponent(m[1]) });
    } else {
      s = await request('GET', '/portal/session');
    }
  } catch (err) {
    signedOut(err.status === 401 && !m ? 'You are not signed in.' : err.message);
    return;
  }
  showSession(s);
  // The event catalogue describes each event; the page works without it.
  try {
    const cat = await request('GET', '/api/v1/webhook-events');
    state.descriptions = Object.fromEntries(cat.data.map((e) => [e.type, e.description]));
  } catch { /* the checkboxes keep their names only */ }
  await route();
}

document.addEventListener('DOMContentLoaded', () => {
  window.addEventListener('hashchange', route);
  $('#create-form').addEventListener('submit', create);
  $('#edit-form').addEventListener('submit', save);
  $('#copy-secret').addEventListener('click', copySecret);
  $('#secret-done').addEventListener('click', secretDone);
  $('#toggle-status').addEventListener('click', toggleStatus);
  $('#send-test').addEventListener('click', sendTest);
  $('#delete-webhook').addEventListener('click', remove);
  $('#rotate-form').addEventListener('submit', rotate);
  $('#recover-form').addEventListener('submit', recover);
  $('#more-webhooks').addEventListener('click', () => moreWebhooks().catch((e) => alert(e.message)));
  $('#refresh-deliveries').addEventListener('click', () => Promise.all([loadDeliveries(false), loadHealth()]));
  $('#more-deliveries').addEventListener('click', () => loadDeliveries(true));
  $('#delivery-filters').addEventListener('change', () => loadDeliveries(false));
  $('#sign-out').addEventListener('click', async () => {
    await request('DELETE', '/portal/session').catch(() => {});
    signedOut('You signed out. Open the portal from the application to sign in again.');
  });
  start();
});
