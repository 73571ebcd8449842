// Scenario 9: every page passes an automated accessibility audit (axe-core, WCAG 2.1 A and AA)
// without a serious or critical violation, in the light and the dark theme, with data on it; and
// at 800 px wide every provider action stays on screen.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  USERS, apiSession, createProvider, launchBrowser, newPage, screenshot, seriousA11yViolations,
  signIn, startStack, waitForSync,
} from '../lib/harness.mjs';

let stack;
let browser;
let provider;

before(async () => {
  stack = await startStack('a11y');
  browser = await launchBrowser();
  const api = await apiSession(stack, USERS.admin);
  provider = await createProvider(api, { name: 'Audited Sentinel' });
  await api.post(`/api/admin/siem-providers/${provider.id}/sync`);
  await waitForSync(api, provider.id);
  await api.post('/api/admin/siem-providers/' + provider.id + '/test');
  await api.dispose();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

async function audit(page, what) {
  const found = [];
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const violation of await seriousA11yViolations(page)) found.push(`${what} (${scheme}): ${violation}`);
  }
  await page.emulateMedia({ colorScheme: 'light' });
  return found;
}

test('no serious accessibility violation on any page, light or dark', async () => {
  const { page, problems } = await newPage(browser, stack);
  const found = [];
  await page.goto('/');
  await page.getByTestId('login-form').waitFor();
  found.push(...await audit(page, 'sign-in'));
  await signIn(page, USERS.admin);

  await page.goto('/#/incidents');
  await page.getByTestId('incident-row').first().waitFor();
  found.push(...await audit(page, 'incidents'));
  await page.getByTestId('incident-link').first().click();
  await page.getByTestId('incident-details').waitFor();
  await page.getByTestId('incident-investigations').locator('li').first().waitFor();
  found.push(...await audit(page, 'incident detail'));
  await page.getByTestId('open-investigation').click();
  await page.getByTestId('linked-incident').first().waitFor();
  found.push(...await audit(page, 'investigation'));

  await page.goto('/#/query');
  await page.getByLabel('KQL query').fill('print shared=1');
  await page.getByTestId('save-query').click();
  await page.getByTestId('saved-name').fill('Audited query');
  await page.getByTestId('saved-submit').click();
  await page.getByTestId('saved-query').first().waitFor();
  await page.getByLabel('KQL query').fill('print n=1, s="text", t=datetime(2024-01-02)');
  await page.getByTestId('run-query').click();
  await page.getByTestId('result-table').waitFor();
  found.push(...await audit(page, 'query with a result'));

  for (const [hash, ready] of [
    ['#/admin/providers', 'health-row'], ['#/admin/providers/new', 'provider-form'],
    ['#/admin/audit', 'audit-row'], ['#/history', 'history-row'], ['#/investigations', 'page-title'],
  ]) {
    await page.goto(`/${hash}`);
    await page.getByTestId(ready).first().waitFor();
    found.push(...await audit(page, hash));
  }
  assert.deepEqual(found, []);
  assert.deepEqual(problems, []);
});

test('at 800 px every provider action stays on screen', async () => {
  const { page, context } = await newPage(browser, stack);
  await page.setViewportSize({ width: 800, height: 900 });
  await signIn(page, USERS.admin);
  await page.goto('/#/admin/providers');
  const actions = page.getByTestId('provider-row').first().locator('.row-actions > *');
  await actions.first().waitFor();
  assert.ok(await actions.count() >= 4);
  assert.equal(await page.getByTestId('providers-health-warning-holder').textContent(), '', 'nothing above a healthy list');
  for (const action of await actions.all()) {
    const box = await action.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 800, `${await action.textContent()} at ${JSON.stringify(box)}`);
  }
  await screenshot(page, 'providers at 800 px');
  await context.close();
});
