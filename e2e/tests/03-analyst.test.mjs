// Scenario 3: an analyst has no admin pages; incidents and the query console work.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, test } from 'node:test';

import {
  USERS, apiSession, clearFaults, createProvider, injectFault, launchBrowser, newPage, screenshot,
  signIn, startStack, waitForText, waitUntil,
} from '../lib/harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack('analyst');
  browser = await launchBrowser();
  // An admin configures the default provider the analyst's queries run on.
  const admin = await apiSession(stack, USERS.admin);
  await createProvider(admin, { name: 'Production Sentinel' });
  await admin.dispose();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('analyst sees no admin link and can use incidents and query', async (t) => {
  const { context, page, problems } = await newPage(browser, stack);
  try {
    await signIn(page, USERS.analyst);
    await waitForText(page.getByTestId('user-role'), /analyst/);
    await waitForText(page.getByTestId('page-title'), /Incidents/);

    // The admin link is absent from the DOM, not merely hidden.
    assert.equal(await page.getByTestId('nav-admin-providers').count(), 0);
    assert.equal(await page.locator('a[href^="#/admin"]').count(), 0);
    assert.ok(!(await page.content()).includes('SIEM Providers'));

    // The incidents page loads (a list or the empty state, never an error).
    await page.locator('[data-testid="incidents-table"], [data-testid="incidents-empty"]').first().waitFor();
    assert.notEqual(await page.getByTestId('incidents-status').getAttribute('data-kind'), 'error');

    // Typing the admin address shows a refusal, not the page.
    await page.goto('/#/admin/providers');
    await page.getByTestId('forbidden').waitFor();
    assert.equal(await page.getByTestId('providers-table').count(), 0);

    // Query console: the picker offers the default provider (the only one here) by its name.
    await page.getByTestId('nav-query').click();
    await waitForText(page.getByTestId('page-title'), /Query/);
    const picker = page.getByLabel('Provider');
    assert.equal(await picker.locator('option').count(), 1);
    assert.equal(await picker.inputValue(), '');
    assert.equal(await page.getByLabel('Time range').inputValue(), 'P1D');
    const timeRanges = await page.getByLabel('Time range').locator('option').evaluateAll((options) => options.map((o) => o.value));
    assert.deepEqual(timeRanges, ['PT1H', 'P1D', 'P7D', 'P30D', 'custom']);

    await page.getByLabel('KQL query').fill('print x=1, greeting="hello"');
    await page.getByLabel('Time range').selectOption('PT1H');
    await page.getByTestId('run-query').click();
    const table = page.getByTestId('result-table').first();
    await table.waitFor();
    await waitForText(page.getByTestId('query-status'), /Query finished: 1 row/);
    const headers = await table.locator('thead th').allTextContents();
    assert.ok(headers[0].startsWith('x') && headers[0].includes('long'), `first column is x (long): ${headers[0]}`);
    assert.ok(headers[1].startsWith('greeting'), `second column is greeting: ${headers[1]}`);
    assert.deepEqual(await table.locator('tbody tr').first().locator('td:not(:last-child)').allTextContents(), ['1', 'hello']);
    assert.equal(await page.getByTestId('partial-notice').count(), 0);
    assert.equal(await page.getByTestId('truncated-notice').count(), 0);

    await screenshot(page, `${t.name} (query)`);

    // The skip link moves focus to the page, and the page stays what it was.
    await page.locator('.skip-link').focus();
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
    assert.equal(await page.evaluate(() => window.location.hash), '#/query');
    await waitForText(page.getByTestId('page-title'), /Query/);

    // The system's dark preference is followed.
    await page.emulateMedia({ colorScheme: 'dark' });
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(15, 20, 27)');
    await screenshot(page, `${t.name} (dark)`);
    await page.emulateMedia({ colorScheme: 'light' });
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(244, 246, 249)');

    // Export: the CSV of a 100,000-row result holds every row (the page shows the first 1,000).
    await page.getByLabel('KQL query').fill('range x from 1 to 100000 step 1');
    await page.getByTestId('run-query').click();
    await waitForText(page.getByTestId('query-status'), /Query finished: 100,000 rows/, 30_000);
    const [csvDownload] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
    const csvText = await fs.readFile(await csvDownload.path(), 'utf8');
    const lines = csvText.trimEnd().split('\r\n');
    assert.equal(lines.length, 100_001, 'a header and every row');
    assert.equal(lines[0], 'x');
    assert.equal(lines[100_000], '100000');
    // Paging past the first 1,000 rows, and sorting the whole result by a column.
    const big = page.getByTestId('result-table').first();
    const firstCell = () => big.locator('tbody tr').first().locator('td').first().textContent();
    await waitForText(big.getByTestId('result-page-info'), /^Rows 1–1,000 of 100,000$/);
    assert.equal(await big.getByTestId('result-prev').isDisabled(), true);
    await big.getByTestId('result-next').click();
    await waitForText(big.getByTestId('result-page-info'), /^Rows 1,001–2,000 of 100,000$/);
    assert.equal(await firstCell(), '1001');
    await big.getByTestId('sort-column').first().click();
    await big.getByTestId('sort-column').first().click();
    assert.equal(await big.locator('thead th').first().getAttribute('aria-sort'), 'descending');
    assert.equal(await firstCell(), '100000');
    await waitForText(big.getByTestId('result-page-info'), /^Rows 1–1,000 of 100,000$/);

    // A custom range is sent as start/end in UTC; a reversed one is refused in the page.
    await page.getByLabel('Time range').selectOption('custom');
    await page.getByLabel('From (UTC)').fill('2026-01-02T00:00');
    await page.getByLabel('To (UTC)').fill('2026-01-01T00:00');
    await page.getByLabel('KQL query').fill('print ranged=1');
    await page.getByTestId('run-query').click();
    await waitForText(page.getByTestId('query-status'), /start before the end/);
    await page.getByLabel('To (UTC)').fill('2026-01-03T12:30');
    await page.getByTestId('run-query').click();
    await waitForText(page.getByTestId('query-status'), /Query finished: 1 row/);
    const ranged = await page.evaluate(async () => (await (await fetch('/api/siem/queries')).json()).queries[0]);
    assert.equal(ranged.timespan, '2026-01-02T00:00:00Z/2026-01-03T12:30:00Z');
    await page.getByLabel('Time range').selectOption('PT1H');

    // Timestamps read as UTC with their raw value on hover.
    await page.getByLabel('KQL query').fill('print t=datetime(2024-01-02)');
    await page.getByTestId('run-query').click();
    await waitForText(page.getByTestId('query-status'), /Query finished: 1 row/);
    const time = page.getByTestId('result-table').first().locator('tbody time');
    await waitForText(time, /^2024-01-02 00:00:00(\.000)? UTC$/);
    assert.match(await time.getAttribute('title'), /^2024-01-02T00:00:00/);

    // A long query shows its elapsed time and can be cancelled; the server records it cancelled.
    await injectFault(stack, { endpoint: 'log_analytics_query', kind: 'delay', ms: 20_000, times: 1 });
    await page.getByLabel('KQL query').fill('print slow=1');
    await page.getByTestId('run-query').click();
    await waitForText(page.getByTestId('query-elapsed'), /^[1-9]\d*\.\d s$/, 5_000);
    await page.getByTestId('cancel-query').click();
    await waitForText(page.getByTestId('query-status'), /Query cancelled after \d+\.\d s\./);
    assert.equal(await page.getByTestId('cancel-query').isHidden(), true);
    await waitUntil(async () => {
      const history = await page.evaluate(async () => (await fetch('/api/siem/queries')).json());
      return history.queries.some((q) => q.query === 'print slow=1' && q.status === 'cancelled');
    }, { message: 'the cancelled query in the audit' });
    await clearFaults(stack);

    // A large result is streamed; when Log Analytics' answer breaks off mid-download the page says
    // so and shows none of it, and the audit records the failure.
    await injectFault(stack, { endpoint: 'log_analytics_query', kind: 'break_off', after_bytes: 3_000_000, times: 1 });
    await page.getByLabel('KQL query').fill('SyntheticRows | take 20000');
    await page.getByTestId('run-query').click();
    await waitForText(page.getByTestId('query-error'), /broke off while it downloaded/, 15_000);
    // The browser reports the cut-short response in its console too: that one report is expected.
    const cut = (p) => /ERR_INCOMPLETE_CHUNKED_ENCODING/.test(p);
    await waitUntil(async () => problems.some(cut), { message: "the browser's report of the cut" });
    problems.splice(problems.findIndex(cut), 1);
    await waitUntil(async () => {
      const history = await page.evaluate(async () => (await fetch('/api/siem/queries')).json());
      return history.queries.some((q) => q.query === 'SyntheticRows | take 20000' && q.status === 'failed');
    }, { message: 'the broken-off query in the audit' });
    await clearFaults(stack);

    // Longs beyond 2^53 show exactly as the API sent them (a double would show ...776000).
    await page.getByLabel('KQL query').fill('print big=9223372036854775807, low=-9223372036854775808, odd=9007199254740993');
    await page.getByTestId('run-query').click();
    await waitForText(page.getByTestId('query-status'), /Query finished: 1 row/);
    assert.deepEqual(
      await page.getByTestId('result-table').first().locator('tbody tr').first().locator('td:not(:last-child)').allTextContents(),
      ['9223372036854775807', '-9223372036854775808', '9007199254740993'],
    );
    // Copying a row copies the exact values.
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    await page.getByTestId('copy-row').first().click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()),
      '9223372036854775807\t-9223372036854775808\t9007199254740993');
    // A double-clicked cell copies its own value, exactly.
    await page.getByTestId('result-table').first().locator('tbody tr').first().locator('td').nth(0).dblclick();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), '9223372036854775807');
    // …and export exactly, as CSV from the server and as JSON from the page.
    const [bigCsv] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
    assert.equal(await fs.readFile(await bigCsv.path(), 'utf8'), 'big,low,odd\r\n9223372036854775807,-9223372036854775808,9007199254740993\r\n');
    const [bigJson] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-json').click()]);
    assert.match(await fs.readFile(await bigJson.path(), 'utf8'), /9223372036854775807,\s*-9223372036854775808,\s*9007199254740993/);

    // An invalid query is explained, not swallowed.
    await page.getByLabel('KQL query').fill('this is ( not kql');
    await page.getByTestId('run-query').click();
    const error = page.getByTestId('query-error');
    await waitForText(error, /query_invalid/);
    await waitForText(error, /The query is invalid/);
    assert.equal(await page.getByTestId('result-table').count(), 0);

    assert.deepEqual(problems, []);
  } finally {
    await screenshot(page, t.name);
    await context.close();
  }
});
