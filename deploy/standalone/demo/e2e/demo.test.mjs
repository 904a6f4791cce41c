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
  await tab1.waitForSelector('#publish-result:has-text("Published PAYMENT_FAILED")', { timeout });

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
