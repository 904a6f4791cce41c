// The webhook portal in a real browser: Chromium or Chrome (CHROME_PATH,
// found by scripts/test-setup-portal.sh), driven by playwright-core, against
// a real dispatcher started by the Go test
// (services/webhook-dispatcher/webhookdispatcher/portal_test.go), which
// passes in:
//   PORTAL_URL       the dispatcher's base URL
//   CONTROL_URL      the test's control endpoint: POST /publish?type=…
//                    publishes an event for the organization, POST
//                    /answer?status=… sets what the receiver answers, GET
//                    /received lists what it received
//   RECEIVER_URL     a real HTTP receiver the webhooks point at
//   TOKEN_WRITER     a JWT of an ADMIN of the organization
//   TOKEN_READER     a JWT of a USER (no write role) of the organization
//   OTHER_WEBHOOK_ID a webhook of another organization
//   SCREENSHOT_DIR   when set, where the README's screenshots go
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

// standardSignatures are the v1 signatures of a request that secret would
// make (Standard Webhooks: the key of a whsec_ secret is its base64 part).
function standardSignature(secret, headers, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return 'v1,' + createHmac('sha256', key).update(`${headers['Webhook-Id']}.${headers['Webhook-Timestamp']}.${body}`).digest('base64');
}
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  assert.ok(v, `${name} must be set (the Go test sets it)`);
  return v;
};
const base = env('PORTAL_URL');
const control = env('CONTROL_URL');
const receiver = env('RECEIVER_URL');
const executablePath = process.env.CHROME_PATH || '/usr/bin/chromium';
const flags = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const timeout = 20_000;
const phone = { width: 390, height: 844 };

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath, headless: true, args: flags });
});
after(async () => {
  await browser?.close();
});

async function ctl(method, path) {
  const res = await fetch(control + path, { method });
  const text = await res.text();
  assert.equal(res.status, 200, `${method} ${path}: ${text}`);
  return JSON.parse(text);
}

// open signs in through the fragment, as the host application does, in a
// fresh browser context of the given size. Script errors and CSP
// violations fail the test; answers of 400 and more are collected (some
// are expected) for the test to look at.
async function open(token, viewport = phone) {
  const context = await browser.newContext({ viewport });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await context.newPage();
  page.errors = [];
  page.failures = [];
  page.on('pageerror', (err) => page.errors.push(err.message));
  page.on('console', (msg) => { if (msg.type() === 'error' && !/status of 4\d\d/.test(msg.text())) page.errors.push(msg.text()); });
  page.on('response', (res) => { if (res.status() >= 400) page.failures.push(`${res.status()} ${new URL(res.url()).pathname}`); });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective));
  });
  await page.goto(`${base}/portal/#token=${encodeURIComponent(token)}`);
  return page;
}

// fitsWidth checks that nothing sticks out sideways at the page's width.
async function assertFitsWidth(page) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `the page is ${scroll} px wide in a ${width} px window`);
}

async function refreshUntil(page, selector) {
  const deadline = Date.now() + timeout;
  for (;;) {
    await page.click('#refresh-deliveries');
    try {
      return await page.waitForSelector(selector, { timeout: 500 });
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
  }
}

test('a user without a write role is refused, in words', async () => {
  const page = await open(env('TOKEN_READER'));
  await page.waitForSelector('#view-signed-out:not([hidden])', { timeout });
  assert.match(await page.textContent('#signed-out-reason'), /role "USER" cannot manage webhooks/);
  assert.deepEqual(page.failures, ['403 /portal/session']);
  // Without a session the API behind the portal answers nothing.
  const status = await page.evaluate(async () => (await fetch('/portal/api/webhooks')).status);
  assert.equal(status, 401);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('create, see the secret once, test, see a delivery, retry it, edit, disable, on a 390 px screen', async () => {
  const page = await open(env('TOKEN_WRITER'));
  await page.waitForSelector('#view-list:not([hidden])', { timeout });
  // The token left the address bar and the history at once.
  assert.equal(await page.evaluate(() => location.hash), '#/');
  assert.ok(!page.url().includes('token='), page.url());
  await assertFitsWidth(page);

  // Create: errors of the API appear next to the field they concern.
  await page.click('#new-webhook');
  // Each event says what it means (the event catalogue).
  assert.ok((await page.getAttribute('label[for="create-event-PAYMENT_FAILED"]', 'title')).length > 10);
  await page.fill('#create-url', 'ftp://example.com/hook');
  await page.check('#create-event-BOOKING_CREATED');
  await page.click('#create-form button[type=submit]');
  await page.waitForSelector('#create-url-error:has-text("must start with https:// or http://")', { timeout });
  assert.equal(await page.getAttribute('#create-url', 'aria-invalid'), 'true');
  await page.fill('#create-url', receiver + '/hooks/xpeditis');
  await page.uncheck('#create-event-BOOKING_CREATED');
  await page.click('#create-form button[type=submit]');
  await page.waitForSelector('#create-events-error:has-text("give at least one of")', { timeout });
  assert.equal(await page.textContent('#create-url-error'), '', 'the URL error went away once the URL was right');
  await page.check('#create-event-BOOKING_CREATED');
  await page.check('#create-event-PAYMENT_FAILED');
  await page.fill('#create-description', 'ERP integration');
  await page.click('#create-form button[type=submit]');

  // The secret, once, with a copy button that really copies it.
  await page.waitForSelector('#view-secret:not([hidden])', { timeout });
  const secret = await page.textContent('#secret-value');
  assert.match(secret, /^whsec_[A-Za-z0-9+/=]{32,}$/);
  await page.click('#copy-secret');
  await page.waitForSelector('#copy-result:has-text("Copied")', { timeout });
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  await assertFitsWidth(page);
  await page.click('#secret-done');
  await page.waitForSelector('#view-webhook:not([hidden])', { timeout });
  assert.equal(await page.textContent('#secret-value'), '', 'the secret is not kept on the page');
  const webhookId = decodeURIComponent(/#\/webhooks\/(.+)$/.exec(page.url())[1]);

  // Send a test: the receiver's answer shows; the receiver got a request
  // signed with the secret that was shown.
  await page.click('#send-test');
  await page.waitForSelector('#test-result[data-success="true"]', { timeout });
  assert.match(await page.textContent('#test-result'), /Delivered: HTTP 200 in \d+ ms/);
  let got = await ctl('GET', '/received');
  assert.equal(got.length, 1);
  const sig = 'sha256=' + createHmac('sha256', secret).update(got[0].body).digest('hex');
  assert.equal(got[0].headers['X-Webhook-Signature'], sig);
  assert.equal(got[0].headers['X-Webhook-Event'], 'WEBHOOK_TEST');

  // A real event is delivered and shows in the log with its attempt.
  const { eventId } = await ctl('POST', '/publish?type=BOOKING_CREATED');
  const item = await refreshUntil(page, `#deliveries li.delivery[data-status="SUCCEEDED"]`);
  const deliveryId = await item.getAttribute('data-id');
  assert.ok(await page.isHidden('#more-deliveries'), 'one delivery: nothing older to show');
  await item.click('summary');
  const text = await item.textContent();
  assert.ok(text.includes(eventId), 'the event id is shown');
  assert.ok(text.includes(`X-Webhook-Id: ${deliveryId}`), 'the request headers are shown');
  assert.match(text, /Attempt 1 · .* · success · HTTP 200 · \d+ ms/);
  got = await ctl('GET', '/received');
  assert.equal(got.at(-1).headers['X-Webhook-Id'], deliveryId);
  await assertFitsWidth(page);

  // Retry it while the receiver fails, then while it works: each attempt
  // shows with the answer.
  await ctl('POST', '/answer?status=503&body=maintenance');
  await page.click(`li.delivery[data-id="${deliveryId}"] button.retry`);
  await page.waitForSelector(`li.delivery[data-id="${deliveryId}"][data-status="FAILED"] .attempt[data-outcome="http_error"]:has-text("HTTP 503")`, { timeout });
  assert.match(await page.textContent(`li.delivery[data-id="${deliveryId}"] .attempt:nth-child(2)`), /sent by hand[\s\S]*maintenance/);
  await ctl('POST', '/answer?status=200&body=ok');
  await page.click(`li.delivery[data-id="${deliveryId}"] button.retry`);
  await page.waitForSelector(`li.delivery[data-id="${deliveryId}"][data-status="SUCCEEDED"] .attempt:nth-child(3)[data-outcome="success"]`, { timeout });
  got = await ctl('GET', '/received');
  assert.deepEqual(got.slice(-3).map((r) => r.headers['X-Webhook-Attempt']), ['1', '2', '3']);

  // Filters: the server narrows the log.
  await page.selectOption('#filter-status', 'FAILED');
  await page.waitForSelector('#no-deliveries:not([hidden])', { timeout });
  await page.selectOption('#filter-status', '');
  await page.selectOption('#filter-event', 'PAYMENT_FAILED');
  await page.waitForSelector('#no-deliveries:not([hidden])', { timeout });
  await page.selectOption('#filter-event', 'BOOKING_CREATED');
  await page.waitForSelector(`li.delivery[data-id="${deliveryId}"]`, { timeout });

  // Health of the last 24 hours.
  await page.waitForSelector('#wh-health:not([hidden]):has-text("success rate, 24 h")', { timeout });
  assert.match(await page.textContent('#wh-health'), /attempts, 24 h/);

  // Rotate with a 24 h overlap: the new secret is shown once; meanwhile a
  // request carries the old secret's X-Webhook-Signature and both
  // Standard Webhooks signatures.
  await page.selectOption('#rotate-overlap', '24h');
  await page.click('#rotate-form button[type=submit]');
  await page.waitForSelector('#view-secret:not([hidden])', { timeout });
  const newSecret = await page.textContent('#secret-value');
  assert.match(newSecret, /^whsec_/);
  assert.notEqual(newSecret, secret);
  assert.match(await page.textContent('#secret-switch'), /The previous secret keeps signing until .+: until then X-Webhook-Signature is made with it/);
  await page.click('#secret-done');
  await page.waitForSelector('#view-webhook:not([hidden])', { timeout });
  assert.match(await page.textContent('#wh-meta'), /the previous secret also signs until/);
  await page.click('#send-test');
  await page.waitForSelector('#test-result[data-success="true"]', { timeout });
  const during = (await ctl('GET', '/received')).at(-1);
  assert.equal(during.headers['X-Webhook-Signature'], 'sha256=' + createHmac('sha256', secret).update(during.body).digest('hex'));
  const sigs = during.headers['Webhook-Signature'].split(' ');
  assert.deepEqual(sigs.sort(), [standardSignature(newSecret, during.headers, during.body), standardSignature(secret, during.headers, during.body)].sort());

  // Recover: a time in the future is refused next to its field; the last
  // minutes send the event again, with its id, as a new delivery.
  const local = (ms) => page.evaluate((t) => {
    const d = new Date(t);
    const pad = (n, w = 2) => String(n).padStart(w, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }, ms);
  await page.fill('#recover-since', await local(Date.now() + 3_600_000));
  await page.click('#recover-form button[type=submit]');
  await page.waitForSelector('#recover-since-error:has-text("is in the future")', { timeout });
  // A window ending before it starts is refused too, naming both.
  await page.fill('#recover-since', await local(Date.now() - 60_000));
  await page.fill('#recover-until', await local(Date.now() - 120_000));
  await page.click('#recover-form button[type=submit]');
  await page.waitForSelector('#recover-since-error:has-text("is not before until")', { timeout });
  await page.fill('#recover-until', '');
  await page.fill('#recover-since', await local(Date.now() - 300_000));
  await page.click('#recover-form button[type=submit]');
  await page.waitForSelector('#recover-progress[data-status="SUCCEEDED"]', { timeout });
  assert.match(await page.textContent('#recover-progress'), /Recovery finished: \d+ events? read, 1 delivery created/);
  await page.selectOption('#filter-event', 'BOOKING_CREATED');
  await refreshUntil(page, `#deliveries li.delivery[data-status="SUCCEEDED"]:not([data-id="${deliveryId}"])`);
  const sameEvent = await page.$$eval('#deliveries li.delivery', (els) => els.map((e) => e.textContent));
  assert.equal(sameEvent.length, 2);
  assert.ok(sameEvent.every((t) => t.includes(eventId)), 'the recovered delivery carries the original event id');

  if (process.env.SCREENSHOT_DIR) {
    await page.screenshot({ path: process.env.SCREENSHOT_DIR + '/portal-390.png', fullPage: true });
  }

  // Edit: a refused URL says why next to the field; events change.
  await page.fill('#edit-url', 'http://10.0.0.1/hook');
  await page.click('#edit-form button[type=submit]');
  await page.waitForSelector('#edit-url-error:has-text("target not allowed: 10.0.0.1 is private")', { timeout });
  await page.fill('#edit-url', receiver + '/hooks/v2');
  await page.uncheck('#edit-event-PAYMENT_FAILED');
  await page.click('#edit-form button[type=submit]');
  await page.waitForSelector('#edit-form .saved:has-text("Saved.")', { timeout });
  assert.equal(await page.textContent('#wh-title'), receiver + '/hooks/v2');

  // Disable and enable.
  await page.click('#toggle-status');
  await page.waitForSelector('#wh-status[data-status="INACTIVE"]', { timeout });
  await page.click('#toggle-status');
  await page.waitForSelector('#wh-status[data-status="ACTIVE"]', { timeout });

  // Back to the list: the webhook is there with its new URL.
  await page.click('text=← All webhooks');
  await page.waitForSelector(`#webhooks li[data-id="${webhookId}"]:has-text("/hooks/v2")`, { timeout });
  await assertFitsWidth(page);

  assert.deepEqual(page.errors, []);
  assert.deepEqual(page.failures, ['400 /portal/api/webhooks', '400 /portal/api/webhooks',
    `400 /portal/api/webhooks/${webhookId}/recover`, `400 /portal/api/webhooks/${webhookId}/recover`, `400 /portal/api/webhooks/${webhookId}`]);
  await page.context().close();
});

test('another organization\'s webhook is not found, whatever the action', async () => {
  const page = await open(env('TOKEN_WRITER'));
  await page.waitForSelector('#view-list:not([hidden])', { timeout });
  const other = env('OTHER_WEBHOOK_ID');
  await page.evaluate((id) => { location.hash = `#/webhooks/${id}`; }, other);
  await page.waitForSelector('#view-missing:not([hidden])', { timeout });
  assert.match(await page.textContent('#missing-reason'), /does not exist in your organization/);
  const statuses = await page.evaluate(async (id) => {
    const call = async (method, path, body) => (await fetch('/portal/api/webhooks/' + id + path, {
      method, headers: { 'Content-Type': 'application/json' }, body: body && JSON.stringify(body),
    })).status;
    return [
      await call('GET', ''), await call('PATCH', '', { status: 'INACTIVE' }), await call('POST', '/test'),
      await call('GET', '/deliveries'), await call('DELETE', ''),
    ];
  }, other);
  assert.deepEqual(statuses, [404, 404, 404, 404, 404]);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a wide screen shows settings and actions side by side', async () => {
  const page = await open(env('TOKEN_WRITER'), { width: 1280, height: 900 });
  await page.waitForSelector('#webhooks li.card', { timeout });
  await page.click('#webhooks li.card a.url');
  await page.waitForSelector('#view-webhook:not([hidden]) #deliveries li.delivery', { timeout });
  await page.click('#deliveries li.delivery summary');
  const [settings, actions] = await page.$$eval('#view-webhook .grid > .panel', (els) => els.map((e) => e.getBoundingClientRect().top));
  assert.equal(Math.round(settings), Math.round(actions));
  await assertFitsWidth(page);
  if (process.env.SCREENSHOT_DIR) {
    await page.screenshot({ path: process.env.SCREENSHOT_DIR + '/portal.png', fullPage: true });
  }
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
