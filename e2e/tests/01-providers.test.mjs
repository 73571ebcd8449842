// Scenario 1: an admin manages SIEM providers through Admin > SIEM Providers.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  DEMO, USERS, clearFaults, injectFault, launchBrowser, newPage, screenshot, signIn, startStack,
  waitForCount, waitForText, waitUntil,
} from '../lib/harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack('providers');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

const WRONG_SECRET = 'wrong-secret-value-0000';

/** YYYY-MM-DD `days` from today (UTC), as a date input takes it. */
function dateIn(days) {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

function row(page, name) {
  return page.getByTestId('provider-row').filter({
    has: page.getByTestId('provider-name').getByText(name, { exact: true }),
  });
}

async function fillConnection(page, { name, client = DEMO.client, secret }) {
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Workspace ID').fill(DEMO.workspace);
  await page.getByLabel('Tenant ID').fill(DEMO.tenant);
  await page.getByLabel('Client ID').fill(client);
  await page.getByLabel('Client secret').fill(secret);
}

test('admin adds, tests, defaults, rotates and deletes providers', async (t) => {
  const { context, page, problems } = await newPage(browser, stack);
  try {
    await signIn(page, USERS.admin);
    assert.equal(await page.getByTestId('user-role').textContent(), 'admin');

    await page.getByTestId('nav-admin-providers').click();
    await waitForText(page.getByTestId('page-title'), /SIEM Providers/);
    await page.getByTestId('providers-empty').waitFor();

    // Add Provider: every field has its "where to find it" hint from the seed.
    await page.getByTestId('add-provider').click();
    await page.getByTestId('provider-form').waitFor();
    await waitForText(page.getByTestId('hint-workspace_id'), /Log Analytics workspace > Properties > Workspace ID/);
    await waitForText(page.getByTestId('hint-tenant_id'), /Azure Active Directory > Properties > Tenant ID/);
    await waitForText(page.getByTestId('hint-client_id'), /App Registrations > Your app > Application \(client\) ID/);
    await waitForText(page.getByTestId('hint-client_secret'), /App Registrations > Your app > Certificates & secrets/);
    assert.equal(await page.getByLabel('Provider type').inputValue(), 'sentinel');

    // A malformed workspace id comes back as a 422 shown next to its field.
    await fillConnection(page, { name: 'Production Sentinel', secret: WRONG_SECRET });
    await page.getByLabel('Workspace ID').fill('my-workspace');
    await page.getByTestId('save-provider').click();
    await waitForText(page.getByTestId('error-workspace_id'), /Workspace ID/);
    assert.equal(await page.getByLabel('Workspace ID').getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Workspace ID').fill(DEMO.workspace);

    // A wrong secret: Test Connection shows progress, then the failing token check and its hint.
    await injectFault(stack, { endpoint: 'token', kind: 'delay', ms: 1500, times: 1 });
    await page.getByTestId('test-connection').click();
    await waitForText(page.getByTestId('test-connection'), /Testing…/, 2_000);
    assert.equal(await page.getByTestId('test-connection').isDisabled(), true);
    await waitForText(page.getByTestId('form-status'), /Testing the connection/, 2_000);
    const result = page.getByTestId('test-result');
    await result.waitFor();
    await clearFaults(stack);
    assert.equal(await result.getAttribute('data-status'), 'error');
    const token = result.getByTestId('check-token');
    assert.equal(await token.getAttribute('data-status'), 'failed');
    assert.equal(await token.getAttribute('data-code'), 'invalid_client_secret');
    await waitForText(token.getByTestId('check-hint'), /secret/i);
    assert.equal(await page.getByTestId('test-connection').isDisabled(), false);
    assert.equal(await page.getByTestId('test-connection').textContent(), 'Test Connection');

    // The right secret passes every check.
    await page.getByLabel('Client secret').fill(DEMO.secret);
    await page.getByTestId('test-connection').click();
    await waitUntil(async () => (await page.getByTestId('test-result').getAttribute('data-status')) === 'healthy',
      { message: 'a healthy test result' });
    for (const check of ['token', 'log_analytics', 'incidents', 'alerts']) {
      assert.equal(await page.getByTestId(`check-${check}`).getAttribute('data-status'), 'passed', check);
    }

    // The secret expires soon: the list warns about it.
    const soon = dateIn(10);
    await page.getByLabel('Secret expires').fill(soon);
    await page.getByTestId('save-provider').click();
    await waitForText(page.getByTestId('flash'), /Added “Production Sentinel”\..* Its connection test passed\./);
    const first = row(page, 'Production Sentinel');
    await first.waitFor();
    await first.getByTestId('default-marker').waitFor();
    assert.equal(await first.getByTestId('secret-masked').textContent(), '****1234');
    assert.equal(await first.getByTestId('status-badge').getAttribute('data-status'), 'active');
    const warning = page.locator('[data-testid="expiry-warning"][data-provider-name="Production Sentinel"]');
    await waitForText(warning, new RegExp(`expires on ${soon} \\(in \\d+ days?\\)`));
    await waitForText(first.getByTestId('expiry-badge'), /Secret expiring/);
    let html = await page.content();
    assert.ok(!html.includes(DEMO.secret), 'the saved secret must never be in the DOM');
    assert.ok(!html.includes(WRONG_SECRET), 'the tried secret must never be in the DOM');

    // A second provider: the app without permissions fails some checks but can be saved.
    await page.getByTestId('add-provider').click();
    await fillConnection(page, { name: 'Secondary Sentinel', client: DEMO.clientNoRoles, secret: DEMO.secretNoRoles });
    await page.getByTestId('test-connection').click();
    await page.getByTestId('test-result').waitFor();
    assert.equal(await page.getByTestId('test-result').getAttribute('data-status'), 'error');
    assert.equal(await page.getByTestId('check-token').getAttribute('data-status'), 'passed');
    const failedChecks = page.locator('[data-testid^="check-"][data-status="failed"]');
    assert.ok(await failedChecks.count() >= 1, 'at least one check fails for the app without roles');
    await waitForText(failedChecks.first().getByTestId('check-hint'), /\S/);
    // Saving after a failed test asks first; saved anyway, its real health is tested at once.
    await page.getByTestId('save-provider').click();
    await page.getByTestId('confirm-failing-save').waitFor();
    await waitForText(page.getByTestId('confirm-title'), /Save a provider whose test failed\?/);
    await page.getByTestId('confirm-cancel').click();
    await page.getByTestId('provider-form').waitFor();
    await page.getByTestId('save-provider').click();
    await page.getByTestId('confirm-ok').click();
    await waitForText(page.getByTestId('flash'), /Added “Secondary Sentinel”\. Its connection test failed/);
    await waitForCount(page.getByTestId('provider-row'), 2);
    const second = row(page, 'Secondary Sentinel');
    assert.equal(await second.getByTestId('default-marker').count(), 0);
    assert.equal(await first.getByTestId('default-marker').count(), 1);
    html = await page.content();
    assert.ok(!html.includes(DEMO.secretNoRoles), 'the second secret must never be in the DOM');

    // A duplicate name is refused next to the name field.
    await page.getByTestId('add-provider').click();
    await fillConnection(page, { name: 'Production Sentinel', secret: DEMO.secret });
    await page.getByTestId('save-provider').click();
    await waitForText(page.getByTestId('error-name'), /already exists/);
    await page.getByTestId('cancel-provider').click();
    await waitForCount(page.getByTestId('provider-row'), 2);

    // The second failed its check: making it the default asks first.
    await waitUntil(async () => (await second.getByTestId('status-badge').getAttribute('data-status')) === 'error',
      { message: 'the saved failing provider in error' });
    await second.getByTestId('row-set-default').click();
    await page.getByTestId('confirm-failing-default').waitFor();
    await page.getByTestId('confirm-ok').click();
    await waitForText(page.getByTestId('providers-status'), /set as default provider/);
    await waitForCount(second.getByTestId('default-marker'), 1);
    await waitForCount(first.getByTestId('default-marker'), 0);

    // Test a saved provider from its row: health is recorded.
    await first.getByTestId('row-test').click();
    await page.getByTestId('row-test-result').waitFor();
    assert.equal(await page.getByTestId('row-test-result').getAttribute('data-status'), 'healthy');
    await waitUntil(async () => (await first.locator('[data-health]').getAttribute('data-health')) === 'healthy',
      { message: 'the row to show a healthy last check' });
    await second.getByTestId('row-test').click();
    await waitForText(page.getByTestId('providers-status'), /Secondary Sentinel.*failed/);
    await waitUntil(async () => (await second.getByTestId('status-badge').getAttribute('data-status')) === 'error',
      { message: 'the failing provider to show the error badge' });

    // Rotate the first provider's secret through Edit: the secret field starts empty.
    await first.getByTestId('row-edit').click();
    await page.getByTestId('provider-form').waitFor();
    assert.equal(await page.getByLabel('Client secret').inputValue(), '');
    await waitForText(page.getByTestId('secret-keep-note'), /Leave empty to keep the current secret \(\*\*\*\*1234\)/);
    assert.equal(await page.getByLabel('Name').inputValue(), 'Production Sentinel');
    // Saving with an empty secret keeps it; testing with unchanged details tests the saved one.
    await page.getByTestId('test-connection').click();
    await page.getByTestId('test-result').waitFor();
    assert.equal(await page.getByTestId('test-result').getAttribute('data-status'), 'healthy');
    assert.equal(await page.getByLabel('Secret expires').inputValue(), soon);
    await page.getByLabel('Client secret').fill(DEMO.secret);
    // The old date belonged to the old secret: it is cleared, and the new one is entered.
    await page.getByTestId('expiry-reset-note').waitFor();
    assert.equal(await page.getByLabel('Secret expires').inputValue(), '');
    const later = dateIn(365);
    await page.getByLabel('Secret expires').fill(later);
    await page.getByTestId('save-provider').click();
    await waitForText(page.getByTestId('flash'), /Saved “Production Sentinel”\. The client secret was rotated\./);
    await waitForText(first.getByTestId('secret-expires'), new RegExp(`Expires ${later}`));
    assert.equal(await warning.count(), 0, 'a far expiry date does not warn');
    assert.equal(await first.getByTestId('expiry-badge').count(), 0);
    html = await page.content();
    assert.ok(!html.includes(DEMO.secret), 'the rotated secret must never be in the DOM');

    // Delete the default provider: the dialog names it and says it is the default.
    await second.getByTestId('row-delete').click();
    const dialog = page.getByTestId('confirm-dialog');
    await dialog.waitFor();
    await waitForText(page.getByTestId('confirm-title'), /Delete “Secondary Sentinel”\?/);
    await page.getByTestId('confirm-default-note').waitFor();
    await page.getByTestId('confirm-cancel').click();
    await dialog.waitFor({ state: 'hidden' });
    await waitForCount(page.getByTestId('provider-row'), 2);

    await second.getByTestId('row-delete').click();
    await dialog.waitFor();
    await page.getByTestId('confirm-ok').click();
    await waitForText(page.getByTestId('providers-status'), /Deleted “Secondary Sentinel”\. It was the default provider/);
    await waitForCount(page.getByTestId('provider-row'), 1);
    assert.equal(await first.getByTestId('default-marker').count(), 0, 'no default is left after deleting it');

    // Deleting a non-default provider has no default note.
    await first.getByTestId('row-delete').click();
    await dialog.waitFor();
    await waitForText(page.getByTestId('confirm-title'), /Production Sentinel/);
    assert.equal(await page.getByTestId('confirm-default-note').count(), 0);
    await page.getByTestId('confirm-cancel').click();

    assert.deepEqual(problems, []);
  } finally {
    await screenshot(page, t.name);
    await context.close();
  }
});
