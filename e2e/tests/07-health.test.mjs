// Scenario 7: provider health in the console — background checks fill each provider's timeline,
// and a provider that starts failing is named at the top of the page with its failing check.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  DEMO, USERS, clearFaults, injectFault, launchBrowser, newPage, screenshot, signIn, startStack,
  waitForText, waitUntil,
} from '../lib/harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack('health', { extraEnv: { SOCMATE_HEALTH_INTERVAL: '1' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('background checks show as a timeline and a failing provider is announced at the top', async (t) => {
  const { page, problems } = await newPage(browser, stack);
  await signIn(page, USERS.admin);
  // Created through the API with the console's session, as the form would.
  const created = await page.evaluate(async (demo) => {
    const response = await fetch('/api/admin/siem-providers', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'SoCMate' },
      body: JSON.stringify({
        name: 'Watched Sentinel', provider_type: 'sentinel', workspace_id: demo.workspace,
        tenant_id: demo.tenant, client_id: demo.client, client_secret: demo.secret,
      }),
    });
    return response.status;
  }, DEMO);
  assert.equal(created, 201);

  await page.goto('/#/admin/providers');
  const row = page.getByTestId('health-row');
  await waitUntil(async () => {
    await page.getByTestId('refresh-providers').click();
    const ok = await row.locator('.timeline').first().locator('.cell-ok').count();
    return ok > 0;
  }, { timeout: 20_000, message: 'a healthy hour in the timeline' });
  await waitForText(row.getByTestId('uptime'), /Uptime 100% \(24 h\)/);
  assert.equal(await page.getByTestId('providers-health-warning').count(), 0);

  // Entra ID starts refusing the app: the next background check fails, nobody pressed Test.
  await injectFault(stack, { endpoint: 'token', kind: 'status', status: 401 });
  await waitUntil(async () => {
    await page.getByTestId('refresh-providers').click();
    return (await page.getByTestId('providers-health-warning').count()) > 0;
  }, { timeout: 20_000, message: 'the health warning' });
  const warning = await page.getByTestId('providers-health-warning').textContent();
  assert.match(warning, /Watched Sentinel/);
  assert.match(warning, /fails its connection check/);
  await waitForText(row.getByTestId('last-failure'), /Last failure .*token/);
  assert.ok(await row.locator('.timeline').first().locator('.cell-mixed, .cell-bad').count() > 0);
  await screenshot(page, 'providers-health');

  await clearFaults(stack);
  await waitUntil(async () => {
    await page.getByTestId('refresh-providers').click();
    return (await page.getByTestId('providers-health-warning').count()) === 0;
  }, { timeout: 20_000, message: 'the warning gone after recovery' });
  assert.deepEqual(problems, []);
  await screenshot(page, t.name);
});
