// Sign in and sign out.

import { ApiError, api, describeError } from '/console/api.js';
import { $, clear, h } from '/console/dom.js';
import { route } from '/console/router.js';
import { currentPath, newPage, renderHeader, session } from '/console/shell.js';
import { announce, statusArea, withBusyButton } from '/console/ui.js';

function signInMessage(e) {
  if (e instanceof ApiError && e.status === 401) return 'The email or password is incorrect.';
  if (e instanceof ApiError && e.status === 429) {
    const wait = e.retryAfter != null ? e.retryAfter : 60;
    return `Too many sign-in attempts; try again in ${wait} seconds.`;
  }
  if (e instanceof ApiError && e.status === 422) return 'Enter a valid email address and your password.';
  return describeError(e);
}

function signInForm(message) {
  const email = h('input', {
    id: 'login-email', name: 'email', type: 'email', autocomplete: 'username',
    required: true, testid: 'login-email', spellcheck: 'false',
  });
  const password = h('input', {
    id: 'login-password', name: 'password', type: 'password',
    autocomplete: 'current-password', required: true, testid: 'login-password',
  });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'login-submit', text: 'Sign in' });
  const status = statusArea('login-status');
  const error = h('p', { class: 'form-error', role: 'alert', id: 'login-error', testid: 'login-error', hidden: true });
  const form = h('form', { class: 'card signin', testid: 'login-form', novalidate: true, 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', tabindex: '-1', testid: 'page-title', text: 'Sign in to SoCMate' }),
    message ? h('p', { class: 'notice notice-info', testid: 'signin-notice', text: message }) : null,
    h('div', { class: 'field' }, h('label', { for: 'login-email', text: 'Email' }), email),
    h('div', { class: 'field' }, h('label', { for: 'login-password', text: 'Password' }), password),
    error,
    h('div', { class: 'actions' }, submit),
    status.el);
  return { form, email, password, submit, status, error };
}

export function renderSignIn(message) {
  session.user = null;
  // Pages still loading must not draw over the sign-in form.
  newPage();
  renderHeader();
  const main = $('#main');
  clear(main);
  document.title = 'Sign in · SoCMate';
  const { form, email, password, submit, status, error } = signInForm(message);
  const showError = (text, focus) => {
    error.textContent = text;
    error.hidden = !text;
    if (focus) focus.focus();
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError('');
    if (!email.value.trim() || !password.value) {
      showError('Enter your email and password.', email.value.trim() ? password : email);
      return;
    }
    status.busy('Signing in…');
    form.setAttribute('aria-busy', 'true');
    try {
      const user = await withBusyButton(submit, 'Signing in…', () => api('POST', '/api/auth/login', {
        email: email.value.trim(), password: password.value,
      }, { allow401: true }));
      password.value = '';
      status.clear();
      await startSession(user);
    } catch (e) {
      status.clear();
      password.value = '';
      showError(signInMessage(e), password);
    } finally {
      form.removeAttribute('aria-busy');
    }
  });
  main.append(form);
  email.focus();
}

export async function startSession(user) {
  session.user = { email: user.email, role: user.role };
  renderHeader();
  const path = currentPath();
  if (path === '/' || path === '/login' || path === '') {
    window.location.hash = '#/incidents';
  } else {
    await route();
  }
  announce(`Signed in as ${user.email} (${user.role}).`);
}

export async function signOut() {
  const button = $('#sign-out');
  button.disabled = true;
  try {
    await api('POST', '/api/auth/logout', undefined, { allow401: true });
  } catch (e) {
    // A session that already ended is signed out all the same.
    if (!(e instanceof ApiError && e.status === 401)) {
      button.disabled = false;
      announce(`Sign-out failed: ${describeError(e)}`);
      return;
    }
  }
  button.disabled = false;
  history.replaceState(null, '', '#/login');
  renderSignIn('You have signed out.');
  announce('You have signed out.');
}
