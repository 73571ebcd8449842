// Scenario 6: the API reference at /api/docs renders the server's OpenAPI document without
// signing in, under the console's strict CSP, and its filter and operations work by keyboard.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  launchBrowser, newPage, screenshot, startStack, waitForCount, waitForText,
} from '../lib/harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack('api-docs');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function operation(page, method, path) {
  return page.locator(`[data-testid="operation"][data-method="${method}"][data-path="${path}"]`);
}

test('API reference lists the operations, expands them and filters them', async (t) => {
  const { context, page, problems } = await newPage(browser, stack);
  try {
    // The document itself is public JSON.
    const spec = await page.request.get('/api/openapi.json');
    assert.equal(spec.status(), 200);
    const doc = await spec.json();
    assert.match(doc.openapi, /^3\.1/);
    let total = 0;
    for (const item of Object.values(doc.paths)) {
      for (const method of HTTP_METHODS) if (item[method]) total += 1;
    }
    assert.ok(total > 0, 'the document has operations');

    // A fresh context (no session cookie) gets the page, under the console's CSP.
    const response = await page.goto('/api/docs');
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-security-policy'] || '', /script-src 'self'/);
    await page.getByTestId('operation').first().waitFor();
    await waitForCount(page.getByTestId('operation'), total);
    assert.equal(await page.getByTestId('docs-status').getAttribute('data-kind'), null, 'no error or progress left');
    assert.equal((await page.getByTestId('docs-title').textContent()).trim(), doc.info.title);
    assert.equal(await page.getByTestId('raw-json-link').getAttribute('href'), '/api/openapi.json');

    // Both ways to authenticate are explained.
    const security = page.getByTestId('security-section');
    assert.ok(await security.isVisible());
    await waitForText(security, /Authorization: Bearer/);
    await waitForText(security, /Cookie/);

    // The operations the console itself uses are there, summarised as "METHOD path — summary".
    const create = operation(page, 'POST', '/api/admin/siem-providers');
    const incidents = operation(page, 'GET', '/api/incidents');
    assert.equal(await create.count(), 1);
    assert.equal(await incidents.count(), 1);
    assert.match(await create.getByTestId('operation-summary').textContent(), /^POST \/api\/admin\/siem-providers( — .+)?$/);
    assert.match(await incidents.getByTestId('operation-summary').textContent(), /^GET \/api\/incidents( — .+)?$/);

    // Expanding the provider create operation by keyboard shows its request body fields.
    const secretField = create.getByTestId('request-body')
      .locator('[data-testid="schema-field"][data-name="client_secret"]');
    assert.equal(await secretField.first().isVisible(), false, 'collapsed at first');
    await create.getByTestId('operation-summary').focus();
    await page.keyboard.press('Enter');
    assert.equal(await create.evaluate((details) => details.open), true);
    await secretField.first().waitFor({ state: 'visible' });
    assert.ok(await create.getByTestId('responses-table').isVisible());

    await screenshot(page, `${t.name} (provider create)`);

    // The filter narrows the list, says so, and Escape restores it.
    const filter = page.getByLabel('Filter operations');
    await filter.fill('siem-providers');
    const visible = page.locator('[data-testid="operation"]:visible');
    const shown = await visible.count();
    assert.ok(shown > 0 && shown < total, `filter shows ${shown} of ${total}`);
    assert.ok(await create.isVisible());
    assert.equal(await incidents.isVisible(), false);
    await waitForText(page.getByTestId('op-filter-count'), new RegExp(`Showing ${shown} of ${total} operations?`));

    await filter.fill('no-such-operation-anywhere');
    await waitForCount(visible, 0);
    assert.ok(await page.getByTestId('no-match').isVisible());

    await filter.press('Escape');
    assert.equal(await filter.inputValue(), '');
    await waitForCount(visible, total);
    assert.equal(await page.getByTestId('no-match').isVisible(), false);

    assert.deepEqual(problems, []);
  } finally {
    await screenshot(page, t.name);
    await context.close();
  }
});
