// The demo page in a real browser: Chromium or Chrome (CHROME_PATH, found by
// scripts/test-setup-demo.sh), driven by playwright-core, against a notifyd started by the Go test
// (deploy/standalone/notifyd/demo_browser_test.go), whose URL comes in
// DEMO_URL. Run it alone with: DEMO_URL=http://127.0.0.1:8080 node --test
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const base = process.env.DEMO_URL;
const executablePath = process.env.CHROME_PATH || '/usr/bin/chromium';
const flags = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const timeout = 20_000;

let browser;
before(async () => {
  assert.ok(base, 'DEMO_URL must name a running notifyd in development mode');
  browser = await chromium.launch({ executablePath, headless: true, args: flags });
});
after(async () => {
  await browser?.close();
});

// openAs opens the page in a new tab, signs in as user and waits for the
// socket to connect. Script errors on the page fail the test.
async function openAs(context, user) {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(err.message));
  page.on('console', (msg) => { if (msg.type() === 'error') page.errors.push(msg.text()); });
  page.on('response', (res) => { if (res.status() >= 400) page.errors.push(`${res.status()} ${res.url()}`); });
  await page.goto(base + '/');
  await page.selectOption('#user-select', user);
  await page.click('#connect');
  await page.waitForSelector('#status[data-state="connected"]', { timeout });
  return page;
}

async function waitForUnread(page, n) {
  await page.waitForFunction((want) => document.querySelector('#unread-count').textContent === String(want), n, { timeout });
}

test('a published event appears live in every tab of its user, and reading it in one tab updates the other', async () => {
  const alice = await browser.newContext();
  const tab1 = await openAs(alice, 'alice');
  const tab2 = await openAs(alice, 'alice');
  const bob = await openAs(await browser.newContext(), 'bob');
  await waitForUnread(tab1, 0);

  await tab1.selectOption('#event-type', 'PAYMENT_FAILED');
  await tab1.click('#publish');
  await tab1.waitForSelector('#publish-result:has-text("Published “Payment failed”")', { timeout });

  for (const tab of [tab1, tab2]) {
    const item = await tab.waitForSelector('#inbox li.unread[data-type="PAYMENT_FAILED"]', { timeout });
    assert.match(await item.textContent(), /Payment failed/);
    await waitForUnread(tab, 1);
  }

  await tab1.click('#inbox li.unread[data-type="PAYMENT_FAILED"] button.mark-read');
  for (const tab of [tab1, tab2]) {
    await tab.waitForSelector('#inbox li.read[data-type="PAYMENT_FAILED"]', { timeout });
    await waitForUnread(tab, 0);
  }

  // Bob is connected through the same gateway and got nothing of Alice's.
  await bob.click('#refresh');
  await waitForUnread(bob, 0);
  assert.equal(await bob.locator('#inbox li').count(), 0);

  if (process.env.SCREENSHOT) await tab2.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  for (const page of [tab1, tab2, bob]) assert.deepEqual(page.errors, []);
});

test('the page loads nothing from outside notifyd', async () => {
  const page = await browser.newPage();
  const outside = [];
  page.on('request', (req) => { if (!req.url().startsWith(base)) outside.push(req.url()); });
  await page.goto(base + '/');
  await page.waitForFunction(() => typeof window.io === 'function', null, { timeout });
  await page.waitForSelector('#user-select option', { state: 'attached', timeout });
  assert.deepEqual(outside, []);
});

test('on a 390 px phone: friendly names and formatted data, a lost connection explained in words, a link to the portal', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await openAs(context, 'alice');
  const options = await page.$$eval('#event-type option', (os) => os.map((o) => [o.value, o.textContent]));
  assert.ok(options.some(([v, t]) => v === 'PAYMENT_FAILED' && t === 'Payment failed'), JSON.stringify(options));
  assert.ok(options.every(([, t]) => !/^[A-Z_]+$/.test(t)), 'no option shows an enum');

  await page.selectOption('#event-type', 'PAYMENT_SUCCESS');
  await page.click('#publish');
  await page.waitForSelector('#publish-result:has-text("Published “Payment received”")', { timeout });
  const item = await page.waitForSelector('#inbox li[data-type="PAYMENT_SUCCESS"]', { timeout });
  const text = await item.textContent();
  assert.match(text, /Payment received/);
  assert.ok(!/[{}"]|PAYMENT_SUCCESS|MEDIUM/.test(text), `raw JSON or an enum in the item: ${text}`);
  const pairs = await item.$$eval('dl.data > dt', (dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent]));
  const data = Object.fromEntries(pairs);
  assert.match(data.Booking, /^BK-\d+$/, JSON.stringify(pairs));
  assert.match(data.Invoice, /^INV-\d+$/);
  assert.match(data.Amount, /1,?840\.50/);
  assert.match(data.Amount, /€|EUR/);
  assert.ok(!('Currency' in data), 'the currency goes with the amount');
  const width = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(width[0] <= width[1], `the page is ${width[0]} px wide in a ${width[1]} px window`);

  // The connection drops (as when the server restarts): the page says so
  // in words, reconnects by itself and says what happened to the messages.
  // Every text the explanation shows is recorded, since the reconnection
  // replaces it within a second or two.
  await page.evaluate(() => {
    window.whyTexts = [];
    new MutationObserver(() => window.whyTexts.push(document.querySelector('#status-why').textContent))
      .observe(document.querySelector('#status-why'), { childList: true, characterData: true, subtree: true });
    state.socket.io.engine.transport.ws.close(); // the WebSocket closes under the page, as when the server goes away
  });
  await page.waitForFunction(() => window.whyTexts.some((t) => t.startsWith('Reconnected')), null, { timeout });
  const whys = await page.evaluate(() => window.whyTexts);
  assert.ok(whys.some((t) => t.startsWith('The connection to the server was lost')), JSON.stringify(whys));
  assert.equal(await page.getAttribute('#status', 'data-state'), 'connected');
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT.replace(/\.png$/, '-390.png'), fullPage: true });

  // The portal opens signed in as the same user, from the same token.
  const [portal] = await Promise.all([context.waitForEvent('page'), page.click('#portal-link')]);
  await portal.waitForSelector('#view-list:not([hidden])', { timeout });
  assert.match(await portal.textContent('#who'), /alice · MANAGER · org-demo-forwarder/);
  assert.equal(await portal.evaluate(() => location.hash), '#/');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('the portal link of a user who may not manage webhooks leads to a refusal in words', async () => {
  const context = await browser.newContext();
  const page = await openAs(context, 'bob');
  const [portal] = await Promise.all([context.waitForEvent('page'), page.click('#portal-link')]);
  await portal.waitForSelector('#view-signed-out:not([hidden])', { timeout });
  assert.match(await portal.textContent('#signed-out-reason'), /role "USER" cannot manage webhooks/);
  await context.close();
});
