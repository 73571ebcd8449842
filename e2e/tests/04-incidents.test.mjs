// Scenario 4: after an admin syncs a provider, incidents list, filter, page and open with alerts.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  USERS, apiSession, clearFaults, createProvider, injectFault, launchBrowser, newPage, screenshot,
  signIn, startStack, waitForCount, waitForSync, waitForText, waitUntil,
} from '../lib/harness.mjs';

let stack;
let browser;
let provider;

before(async () => {
  // No scheduled syncs: the sync this test starts from the console is the one that fills the store.
  stack = await startStack('incidents', { extraEnv: { SOCMATE_SYNC_INTERVAL: '0' } });
  browser = await launchBrowser();
  const admin = await apiSession(stack, USERS.admin);
  provider = await createProvider(admin, { name: 'Production Sentinel' });
  await admin.dispose();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('incidents after a sync: list, filters, paging and detail with alerts', async (t) => {
  const { context, page, problems } = await newPage(browser, stack);
  try {
    await signIn(page, USERS.admin);

    // Start the sync from the provider row, then wait for it through the same session.
    await page.getByTestId('nav-admin-providers').click();
    const row = page.getByTestId('provider-row').filter({ hasText: 'Production Sentinel' });
    await row.getByTestId('row-sync').click();
    await waitForText(page.getByTestId('providers-status'), /Incident sync of “Production Sentinel” finished: this run read \d+ incidents?, \d+ new, \d+ updated\./, 30_000);
    // The same cookie session reads the sync state through the API.
    const status = await waitForSync(page.request, provider.id);
    assert.ok(status.fetched >= 1, `the sync fetched incidents: ${JSON.stringify(status)}`);

    await page.getByTestId('nav-incidents').click();
    await waitForText(page.getByTestId('page-title'), /Incidents/);
    const rows = page.getByTestId('incident-row');
    await rows.first().waitFor();
    const total = await rows.count();
    assert.ok(total >= 3, `several incidents are listed (${total})`);
    await waitForText(page.getByTestId('page-info'), new RegExp(`of ${total} incidents`));
    await waitForText(page.getByTestId('data-as-of'), /^Data as of \d{4}-\d{2}-\d{2} \d{2}:\d{2}/);
    assert.equal(await page.getByTestId('sync-failed-warning').count(), 0);

    // Filters: status and severity, reflected in the address.
    await page.getByLabel('Status').selectOption('active');
    await page.getByTestId('apply-filters').click();
    await waitForText(page.getByTestId('page-info'), /incident/);
    await page.waitForFunction(() => window.location.hash.includes('status=active'));
    const activeCount = await rows.count();
    assert.ok(activeCount >= 1 && activeCount < total, `the status filter narrows the list (${activeCount} of ${total})`);
    for (const text of await page.getByTestId('incident-status').allTextContents()) assert.equal(text, 'Active');

    await page.getByLabel('Severity').selectOption('high');
    await page.getByTestId('apply-filters').click();
    await page.waitForFunction(() => window.location.hash.includes('severity=high'));
    await waitForText(page.getByTestId('page-info'), /incident/);
    for (const text of await page.getByTestId('severity').allTextContents()) assert.equal(text, 'high');

    // Source: each incident names its products and where it was read from; the product filter
    // keeps only incidents with an alert from that product.
    await page.goto('/#/incidents');
    await waitForCount(rows, total);
    for (const text of await page.getByTestId('incident-origin').allTextContents()) {
      assert.match(text, /Defender XDR \(tenant-wide\)/);
      assert.match(text, /Tenant [0-9a-f-]{36}/);
    }
    await page.getByLabel('Product').selectOption('microsoftDefenderForEndpoint');
    await page.getByTestId('apply-filters').click();
    await page.waitForFunction(() => window.location.hash.includes('source=microsoftDefenderForEndpoint'));
    // The filtered page replaces the full one once it arrives; the old rows stay until then.
    const endpointCount = await waitUntil(async () => {
      const count = await rows.count();
      return count >= 1 && count < total ? count : false;
    }, { timeout: 15_000, message: `the product filter narrows the list (of ${total})` });
    for (const text of await page.getByTestId('incident-origin').allTextContents()) assert.match(text, /Defender for Endpoint/);

    // Paging with next_cursor (two per page).
    await page.goto('/#/incidents?limit=2');
    await waitForCount(rows, 2);
    await waitForText(page.getByTestId('page-info'), new RegExp(`^1–2 of ${total} incidents$`));
    assert.equal(await page.getByTestId('prev-page').isDisabled(), true);
    const firstPageIds = await rows.evaluateAll((els) => els.map((e) => e.dataset.incidentId));
    await page.getByTestId('next-page').click();
    await waitForText(page.getByTestId('page-info'), new RegExp(`^3–\\d+ of ${total} incidents$`));
    const secondPageIds = await rows.evaluateAll((els) => els.map((e) => e.dataset.incidentId));
    assert.ok(secondPageIds.every((id) => !firstPageIds.includes(id)), 'page 2 shows other incidents');
    await page.getByTestId('prev-page').click();
    await waitForText(page.getByTestId('page-info'), new RegExp(`^1–2 of ${total} incidents$`));

    // Clear filters: back to every incident, and the address says so.
    await page.getByTestId('clear-filters').click();
    await waitForText(page.getByTestId('page-info'), new RegExp(`of ${total} incidents$`));
    await page.waitForFunction(() => !/status=|severity=|source=/.test(window.location.hash));
    assert.equal(await page.getByLabel('Product').inputValue(), '');

    // Search (any case), owner (any case) and sort, as the API answers them.
    const everything = (await (await page.request.get('/api/incidents?limit=200')).json()).incidents;
    const title = everything[0].display_name;
    const titled = everything.filter((i) => (i.display_name || '').toLowerCase().includes(title.toLowerCase()));
    await page.getByLabel('Title contains').fill(title.toUpperCase());
    await page.getByTestId('apply-filters').click();
    await page.waitForFunction(() => window.location.hash.includes('search='));
    await waitForText(page.getByTestId('page-info'), new RegExp(`of ${titled.length} incidents?$`));
    for (const text of await page.getByTestId('incident-link').allTextContents()) {
      assert.ok(text.toLowerCase().includes(title.toLowerCase()), `${text} contains ${title}`);
    }
    await page.getByTestId('clear-filters').click();
    const owner = everything.find((i) => i.assigned_to).assigned_to;
    const owned = everything.filter((i) => (i.assigned_to || '').toLowerCase() === owner.toLowerCase());
    await page.getByLabel('Assigned to').fill(owner.toUpperCase());
    await page.getByTestId('apply-filters').click();
    await waitForText(page.getByTestId('page-info'), new RegExp(`of ${owned.length} incidents?$`));
    for (const text of await page.getByTestId('incident-owner').allTextContents()) assert.equal(text.toLowerCase(), owner.toLowerCase());
    await page.getByTestId('clear-filters').click();
    await page.getByLabel('Sort by').selectOption('severity');
    await page.getByTestId('apply-filters').click();
    await page.waitForFunction(() => window.location.hash.includes('sort=severity'));
    await waitForText(page.getByTestId('page-info'), new RegExp(`of ${total} incidents$`));
    const rank = { high: 4, medium: 3, low: 2, informational: 1 };
    const order = (await page.getByTestId('severity').allTextContents()).map((s) => rank[s] || 0);
    assert.deepEqual(order, [...order].sort((a, b) => b - a), `high first: ${order}`);
    await page.getByTestId('clear-filters').click();

    // Detail: fields and the alerts.
    await page.goto('/#/incidents');
    await rows.first().waitFor();
    const name = (await rows.first().getByTestId('incident-link').textContent()).trim();
    await rows.first().getByTestId('incident-link').click();
    await waitForText(page.getByTestId('page-title'), new RegExp(name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    await page.getByTestId('incident-details').waitFor();
    await waitForText(page.getByTestId('detail-origin'), /Defender XDR \(tenant-wide\)/);
    const alerts = page.getByTestId('alert-row');
    await alerts.first().waitFor();
    assert.ok(await alerts.count() >= 1);
    await screenshot(page, `${t.name} (detail)`);

    await page.getByTestId('back-to-incidents').click();
    await rows.first().waitFor();

    // A sign-in incident: its evidence with the verdict, the comment with its author and time,
    // and a one-click pivot into the logs on the incident's provider.
    await page.getByTestId('incident-link').filter({ hasText: 'Suspicious sign-in activity involving one user' }).first().click();
    await page.getByTestId('incident-details').waitFor();
    const evidence = page.getByTestId('evidence-row').filter({ hasText: 'diego.siciliani@contoso.onmicrosoft.com' });
    await evidence.waitFor();
    assert.equal((await evidence.getByTestId('evidence-verdict').textContent()).trim(), 'Suspicious');
    await waitForText(page.getByTestId('incident-timeline'), /Created: .*First activity: .*Last activity: /s);
    assert.match(await page.getByTestId('comment-byline').first().textContent(), /@contoso\.onmicrosoft\.com · \d{4}-\d{2}-\d{2}/);
    await screenshot(page, `${t.name} (evidence)`);
    await evidence.getByTestId('evidence-pivot').click();
    await waitForText(page.getByTestId('page-title'), /Query/);
    const kql = await page.getByLabel('KQL query').inputValue();
    assert.match(kql, /^SigninLogs\n\| where UserPrincipalName =~ "diego\.siciliani@contoso\.onmicrosoft\.com"/);

    // From an incident, one click opens an investigation about it.
    await page.goBack();
    await page.getByTestId('incident-details').waitFor();
    await page.getByTestId('open-investigation').click();
    await waitForText(page.getByTestId('page-title'), /^Incident \d+: Suspicious sign-in activity involving one user$/);
    await waitForText(page.getByTestId('investigation-description'), /From incident \d+/);
    // The investigation holds the incident it was opened from, and the incident names it back.
    const linked = page.getByTestId('linked-incident-link').filter({ hasText: 'Suspicious sign-in activity involving one user' });
    await linked.waitFor();
    await screenshot(page, `${t.name} (investigation)`);
    await linked.click();
    await page.getByTestId('incident-details').waitFor();
    await waitForText(page.getByTestId('incident-investigations'), /^Incident \d+: Suspicious sign-in activity involving one user$/);

    // A sync that fails is shown on the list until a run succeeds again.
    await injectFault(stack, { endpoint: 'graph_incidents', kind: 'status', status: 403 });
    await page.request.post(`/api/admin/siem-providers/${provider.id}/sync`, { headers: { 'X-Requested-With': 'SoCMate' } });
    await waitUntil(async () => {
      const sync = await (await page.request.get(`/api/admin/siem-providers/${provider.id}/sync`)).json();
      return sync.state === 'idle' && sync.last_error ? sync : false;
    }, { timeout: 30_000, message: 'a failed sync run' });
    await clearFaults(stack);
    await page.goto('/#/incidents');
    await page.getByTestId('sync-failed-warning').waitFor();
    await page.reload();
    await page.getByTestId('sync-failed-warning').waitFor();

    assert.deepEqual(problems, []);
  } finally {
    await screenshot(page, t.name);
    await context.close();
  }
});
