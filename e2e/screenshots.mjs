// Writes the console's main pages at 1366x768 into docs/screenshots/*.png:
//   node screenshots.mjs            (needs target/debug/{socmate,azure-emulator}, /usr/bin/chromium)
// Starts its own emulator and server with a fresh data directory, like the tests.

import fsp from 'node:fs/promises';
import path from 'node:path';

import {
  DEMO, REPO_ROOT, USERS, apiSession, createProvider, launchBrowser, newPage, signIn, startStack,
  waitForSync,
} from './lib/harness.mjs';

const OUT = path.join(REPO_ROOT, 'docs', 'screenshots');

const stack = await startStack('screenshots');
let browser;
try {
  browser = await launchBrowser();
  await fsp.mkdir(OUT, { recursive: true });
  const { context, page } = await newPage(browser, stack);
  const shot = async (name) => {
    // Let fonts and layout settle, and keep the focus ring off the picture.
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await page.waitForTimeout(150);
    const file = path.join(OUT, `${name}.png`);
    await page.screenshot({ path: file });
    process.stdout.write(`wrote ${path.relative(REPO_ROOT, file)}\n`);
  };

  // Sign-in.
  await page.goto('/');
  await page.getByTestId('login-form').waitFor();
  await page.getByLabel('Email').fill(USERS.admin.email);
  await shot('sign-in');

  // Two providers, synced incidents.
  const admin = await apiSession(stack, USERS.admin);
  const inDays = (days) => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
  const production = await createProvider(admin, { name: 'Production Sentinel', client_secret_expires_at: inDays(400) });
  await createProvider(admin, {
    name: 'EU Sentinel (read-only app)', client_id: DEMO.clientNoRoles, client_secret: DEMO.secretNoRoles,
    client_secret_expires_at: inDays(12),
  });
  await admin.post(`/api/admin/siem-providers/${production.id}/sync`);
  await waitForSync(admin, production.id);

  await signIn(page, USERS.admin);

  // Providers list, after a health check of each.
  await page.getByTestId('nav-admin-providers').click();
  await page.getByTestId('providers-table').waitFor();
  for (const name of ['Production Sentinel', 'EU Sentinel (read-only app)']) {
    const row = page.getByTestId('provider-row').filter({ hasText: name });
    await row.getByTestId('row-test').click();
    await page.getByTestId('row-test-result').waitFor();
  }
  await page.evaluate(() => { document.querySelector('[data-testid="row-test-result-holder"]').textContent = ''; });
  await page.getByTestId('refresh-providers').click();
  await page.waitForTimeout(300);
  await shot('providers');

  // Add Provider with a failing test result (wrong secret), so the hints show.
  await page.getByTestId('add-provider').click();
  await page.getByLabel('Name').fill('Staging Sentinel');
  await page.getByLabel('Workspace ID').fill(DEMO.workspace);
  await page.getByLabel('Tenant ID').fill(DEMO.tenant);
  await page.getByLabel('Client ID').fill(DEMO.client);
  await page.getByLabel('Client secret').fill('not-the-right-secret');
  await page.getByTestId('test-connection').click();
  await page.getByTestId('test-result').waitFor();
  await page.getByTestId('test-result').scrollIntoViewIfNeeded();
  await shot('add-provider-test-failed');
  await page.getByLabel('Client secret').fill(DEMO.secret);
  await page.getByTestId('test-connection').click();
  await page.locator('[data-testid="test-result"][data-status="healthy"]').waitFor();
  await page.getByTestId('test-result').scrollIntoViewIfNeeded();
  await shot('add-provider-test-passed');
  await page.getByLabel('Client secret').fill('');

  // Incidents and one incident's detail.
  await page.goto('/#/incidents');
  await page.getByTestId('incidents-table').waitFor();
  await shot('incidents');
  await page.getByTestId('incident-link').first().click();
  await page.getByTestId('incident-details').waitFor();
  await shot('incident-detail');

  // An investigation opened from that incident, with a query run in it.
  await page.getByTestId('open-investigation').click();
  await page.getByTestId('linked-incident-link').first().waitFor();
  await page.getByTestId('investigation-run').click();
  await page.getByLabel('KQL query').fill('range attempt from 1 to 5 step 1');
  await page.getByTestId('run-query').click();
  await page.getByTestId('result-table').waitFor();
  await page.getByTestId('query-investigation').getByRole('link').click();
  await page.getByTestId('investigation-query').first().waitFor();
  await shot('investigation');

  // Query console with a result, saved and shared with the team.
  await page.goto('/#/query');
  await page.getByTestId('leave-investigation').click();
  await page.getByLabel('KQL query').fill('SecurityIncident | summarize count() by Status');
  await page.getByLabel('Time range').selectOption('P30D');
  await page.getByTestId('run-query').click();
  await page.getByTestId('result-table').waitFor();
  await page.getByTestId('save-query').click();
  await page.getByTestId('saved-name').fill('Incidents by status');
  await page.getByTestId('saved-shared').check();
  await page.getByTestId('saved-submit').click();
  await page.getByTestId('saved-query').filter({ hasText: 'Incidents by status' }).waitFor();
  await shot('query');

  await context.close();
  await admin.dispose();
} finally {
  await browser?.close();
  await stack.stop();
}
