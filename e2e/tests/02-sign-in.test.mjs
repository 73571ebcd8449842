// Scenario 2: sign-in errors are calm and uniform; sign-out returns to the form.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  USERS, launchBrowser, newPage, screenshot, startStack, waitForText,
} from '../lib/harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack('sign-in');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

const UNIFORM = 'The email or password is incorrect.';

async function signInAgain(page) {
  await page.getByLabel('Email').fill(USERS.admin.email);
  await page.getByLabel('Password').fill(USERS.admin.password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('user-email').filter({ hasText: USERS.admin.email }).waitFor();
}

test('wrong password shows the uniform message', async (t) => {
  const { context, page, problems } = await newPage(browser, stack);
  try {
    await page.goto('/');
    await page.getByTestId('login-form').waitFor();
    // Not signed in: no navigation, no user area.
    assert.equal(await page.getByTestId('nav-incidents').count(), 0);
    assert.equal(await page.getByTestId('user-area').isVisible(), false);

    await page.getByLabel('Email').fill(USERS.admin.email);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByTestId('login-submit').click();
    const error = page.getByTestId('login-error');
    await waitForText(error, /incorrect/);
    assert.equal((await error.textContent()).trim(), UNIFORM);
    assert.equal(await page.getByLabel('Password').inputValue(), '', 'the password field is cleared');
    assert.equal(await page.getByTestId('login-submit').isDisabled(), false);

    // An unknown account gets exactly the same words.
    await page.getByLabel('Email').fill('nobody@example.com');
    await page.getByLabel('Password').fill('whatever-password');
    await page.getByTestId('login-submit').click();
    await waitForText(error, /incorrect/);
    assert.equal((await error.textContent()).trim(), UNIFORM);
    assert.equal(await page.getByTestId('nav-incidents').count(), 0);

    await screenshot(page, `${t.name} (form)`);

    // The right password signs in, by keyboard alone; the header shows who; sign-out ends the session.
    await page.reload();
    await page.getByTestId('login-form').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'login-email',
      'the email field has focus when the form opens');
    await page.keyboard.type(USERS.admin.email);
    await page.keyboard.press('Tab');
    await page.keyboard.type(USERS.admin.password);
    await page.keyboard.press('Enter');
    await page.getByTestId('user-email').filter({ hasText: USERS.admin.email }).waitFor();
    await waitForText(page.getByTestId('page-title'), /Incidents/);

    // A session that ends elsewhere sends the console back to the form, then to the same page.
    const ended = await page.request.post('/api/auth/logout', { headers: { 'X-Requested-With': 'SoCMate' } });
    assert.equal(ended.status(), 204);
    await page.getByTestId('nav-admin-providers').click();
    await waitForText(page.getByTestId('signin-notice'), /session has ended/);
    await signInAgain(page);
    await waitForText(page.getByTestId('page-title'), /SIEM Providers/);
    await waitForText(page.getByTestId('user-role'), /admin/);
    await page.getByTestId('sign-out').click();
    await page.getByTestId('login-form').waitFor();
    await waitForText(page.getByTestId('signin-notice'), /signed out/);
    const me = await page.request.get('/api/auth/me');
    assert.equal(me.status(), 401, 'the session is gone after sign-out');
    // A reload stays signed out.
    await page.reload();
    await page.getByTestId('login-form').waitFor();

    assert.deepEqual(problems, []);
  } finally {
    await screenshot(page, t.name);
    await context.close();
  }
});
