// Scenario 2b: repeated failed sign-ins are throttled, and the form says how long to wait.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  USERS, launchBrowser, newPage, screenshot, startStack, waitUntil,
} from '../lib/harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack('sign-in-throttle', { extraEnv: { SOCMATE_SIGN_IN_RATE: '3' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('too many sign-in attempts show the wait', async (t) => {
  const { context, page, problems } = await newPage(browser, stack);
  try {
    await page.goto('/');
    await page.getByTestId('login-form').waitFor();
    const error = page.getByTestId('login-error');
    let text = '';
    for (let attempt = 1; attempt <= 10; attempt += 1) {
      await page.getByLabel('Email').fill(USERS.analyst.email);
      await page.getByLabel('Password').fill(`wrong-password-${attempt}`);
      await page.getByTestId('login-submit').click();
      // Each answer replaces the message; wait until the button is usable again.
      await waitUntil(async () => !(await page.getByTestId('login-submit').isDisabled()), { message: 'the sign-in to finish' });
      text = (await error.textContent()).trim();
      if (text.startsWith('Too many')) break;
      assert.equal(text, 'The email or password is incorrect.');
    }
    assert.match(text, /^Too many sign-in attempts; try again in \d+ seconds\.$/);
    assert.equal(await page.getByTestId('nav-incidents').count(), 0);
    assert.deepEqual(problems, []);
  } finally {
    await screenshot(page, t.name);
    await context.close();
  }
});
