// Scenario 8: what only the API offered before — the audit log (admins), query history with
// re-run, and investigations — each has a page, for the roles it is meant for.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  DEMO, USERS, launchBrowser, newPage, screenshot, signIn, startStack, waitForText, waitUntil,
} from '../lib/harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack('records');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

async function createProvider(page) {
  return page.evaluate(async (demo) => {
    const response = await fetch('/api/admin/siem-providers', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'SoCMate' },
      body: JSON.stringify({
        name: 'Records Sentinel', provider_type: 'sentinel', workspace_id: demo.workspace,
        tenant_id: demo.tenant, client_id: demo.client, client_secret: demo.secret,
      }),
    });
    return response.status;
  }, DEMO);
}

test('the audit log, query history and investigations have pages for their roles', async (t) => {
  const admin = await newPage(browser, stack);
  await signIn(admin.page, USERS.admin);
  assert.equal(await createProvider(admin.page), 201);

  // Audit log: entries newest first, filterable, and the filter can be cleared.
  await admin.page.getByTestId('nav-admin-audit').click();
  await waitForText(admin.page.getByTestId('page-title'), /Audit log/);
  const rows = admin.page.getByTestId('audit-row');
  await rows.first().waitFor();
  assert.match(await rows.first().textContent(), /provider\.create/);
  await admin.page.getByLabel('Action').fill('auth.login');
  await admin.page.getByTestId('audit-apply').click();
  await waitUntil(async () => {
    const texts = await rows.allTextContents();
    return texts.length > 0 && texts.every((text) => text.includes('auth.login'));
  }, { message: 'only sign-ins listed' });
  await screenshot(admin.page, `${t.name} (audit)`);
  await admin.page.getByTestId('audit-clear').click();
  await waitUntil(async () => (await rows.allTextContents()).some((text) => text.includes('provider.create')),
    { message: 'every entry again' });

  // An analyst: no audit page, but history with re-run, and investigations.
  const analyst = await newPage(browser, stack);
  const page = analyst.page;
  await signIn(page, USERS.analyst);
  assert.equal(await page.getByTestId('nav-admin-audit').count(), 0);
  await page.goto('/#/admin/audit');
  await page.getByTestId('forbidden').waitFor();

  await page.getByTestId('nav-query').click();
  await page.getByLabel('KQL query').fill('print remembered=42');
  await page.getByTestId('run-query').click();
  await waitForText(page.getByTestId('query-status'), /Query finished: 1 row/);
  await page.getByTestId('nav-query').click();
  await page.getByLabel('KQL query').fill('');
  await page.getByTestId('nav-history').click();
  const past = page.getByTestId('history-row').filter({ hasText: 'print remembered=42' });
  await past.waitFor();
  assert.match(await past.textContent(), /Records Sentinel/);
  await past.getByTestId('history-rerun').click();
  await waitForText(page.getByTestId('page-title'), /Query/);
  assert.equal(await page.getByLabel('KQL query').inputValue(), 'print remembered=42');

  await page.getByTestId('nav-investigations').click();
  await page.getByTestId('new-investigation').locator('summary').click();
  await page.getByLabel('Title').fill('Phishing wave, December');
  await page.getByLabel('Description (optional)').fill('Reported by three users.');
  await page.getByTestId('investigation-create').click();
  await waitForText(page.getByTestId('page-title'), /Phishing wave, December/);
  await waitForText(page.getByTestId('investigation-provider'), /Records Sentinel/);
  // A query run from the investigation runs on its provider and is listed in it.
  await page.getByTestId('investigation-run').click();
  await waitForText(page.getByTestId('query-investigation'), /Phishing wave, December/);
  assert.equal(await page.getByTestId('query-provider').isDisabled(), true);
  await page.getByLabel('KQL query').fill('print inside=7');
  await page.getByTestId('run-query').click();
  await waitForText(page.getByTestId('query-status'), /Query finished: 1 row/);
  await page.getByTestId('query-investigation').getByRole('link').click();
  await waitForText(page.getByTestId('page-title'), /Phishing wave, December/);
  const inside = page.getByTestId('investigation-query').filter({ hasText: 'print inside=7' });
  await inside.waitFor();
  assert.match(await inside.textContent(), /analyst@example\.com/);
  await page.getByText('← Investigations').click();
  await page.getByTestId('investigation-link').filter({ hasText: 'Phishing wave, December' }).waitFor();
  await screenshot(page, `${t.name} (investigations)`);

  // Saved queries: saved and shared by the analyst, run by the admin, editable by the owner only.
  await page.getByTestId('nav-query').click();
  await page.getByTestId('leave-investigation').click();
  await page.getByLabel('KQL query').fill('print saved=9223372036854775807');
  await page.getByTestId('save-query').click();
  await page.getByTestId('saved-name').fill('Largest long');
  await page.getByTestId('saved-shared').check();
  await page.getByTestId('saved-submit').click();
  await waitForText(page.getByTestId('query-status'), /Saved “Largest long”, shared with everyone\./);
  const saved = page.getByTestId('saved-query').filter({ hasText: 'Largest long' });
  await saved.waitFor();
  assert.match(await saved.textContent(), /yours, shared/);
  // Saving it again under its name updates it rather than adding a second one.
  await saved.getByTestId('saved-load').click();
  await page.getByLabel('KQL query').fill('print saved=9223372036854775807, again=1');
  await page.getByTestId('save-query').click();
  assert.equal(await page.getByTestId('saved-name').inputValue(), 'Largest long');
  await page.getByTestId('saved-submit').click();
  await waitForText(page.getByTestId('query-status'), /Updated “Largest long”/);
  await waitUntil(async () => (await page.getByTestId('saved-query').allTextContents()).filter((t) => t.includes('Largest long')).length === 1
    && (await saved.textContent()).includes('again=1'), { message: 'one saved query, updated' });
  await screenshot(page, `${t.name} (saved queries)`);

  await admin.page.getByTestId('nav-query').click();
  const theirs = admin.page.getByTestId('saved-query').filter({ hasText: 'Largest long' });
  await theirs.waitFor();
  assert.match(await theirs.textContent(), /shared by analyst@example\.com/);
  await theirs.getByTestId('saved-load').click();
  assert.equal(await admin.page.getByLabel('KQL query').inputValue(), 'print saved=9223372036854775807, again=1');
  await admin.page.getByTestId('run-query').click();
  await waitForText(admin.page.getByTestId('query-status'), /Query finished: 1 row/);
  await waitForText(admin.page.locator('[data-testid="result-table"] tbody td').first(), /^9223372036854775807$/);

  assert.deepEqual(admin.problems, []);
  assert.deepEqual(analyst.problems, []);
});
