// SoCMate console: a small single-page app over the SoCMate API.
//
// Plain ES module, no build step, no dependencies. Every piece of server data reaches the DOM
// through textContent or attribute setters (never innerHTML), so nothing the API returns can run.
// The session cookie is HttpOnly: this code never sees it. Every non-GET request carries
// `X-Requested-With: SoCMate`, which the server requires of cookie-authenticated unsafe requests.

import { $, append, clear, h } from '/console/dom.js';

/** Announces a message to screen readers through the global polite live region. */
function announce(message) {
  const region = $('#announcer');
  region.textContent = '';
  // A fresh text node after a tick makes repeated identical messages heard again.
  window.setTimeout(() => { region.textContent = message; }, 30);
}

function formatTime(value) {
  if (!value) return null;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} `
    + `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())} UTC`;
}

function timeEl(value, fallback = 'never') {
  const text = formatTime(value);
  if (!text) return h('span', { class: 'muted', text: fallback });
  return h('time', { datetime: value, title: value, text });
}

function plural(n, one, many) {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

// ---------------------------------------------------------------------------------------------
// API access

class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || null;
    this.errors = Array.isArray(this.problem.errors) ? this.problem.errors : [];
    this.retryAfter = retryAfter;
  }
}

let onUnauthenticated = () => {};

/**
 * Calls the API. Resolves with the parsed JSON body (or null for an empty body); rejects with an
 * ApiError carrying the RFC 9457 problem. A 401 outside the sign-in calls ends the session view.
 */
async function api(method, path, body, { allow401 = false } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Requested-With'] = 'SoCMate';
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (cause) {
    throw new ApiError(0, {
      code: 'network_error',
      title: 'Network error',
      detail: 'The SoCMate server could not be reached. Check your connection and try again.',
    });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const retryHeader = response.headers.get('Retry-After');
    let retryAfter = null;
    if (retryHeader && /^\d+$/.test(retryHeader.trim())) retryAfter = Number(retryHeader.trim());
    else if (data && typeof data.retry_after === 'number') retryAfter = Math.ceil(data.retry_after);
    const problem = data && typeof data === 'object' ? data : {
      title: response.statusText || 'Error',
      detail: `The server answered HTTP ${response.status}.`,
    };
    const error = new ApiError(response.status, problem, retryAfter);
    if (response.status === 401 && !allow401) onUnauthenticated(error);
    throw error;
  }
  return data;
}

/** A readable sentence for an API error, for status areas. */
function describeError(error) {
  if (!(error instanceof ApiError)) return `Unexpected error: ${error && error.message}`;
  if (error.status === 429) {
    const wait = error.retryAfter != null ? `${error.retryAfter} seconds` : 'a moment';
    return `Too many requests; try again in ${wait}.`;
  }
  if (error.status === 403) return 'You do not have permission to do this (admin role required).';
  return error.message;
}

/** A status/alert area that can show progress, success and errors. */
function statusArea(testid, { polite = true } = {}) {
  const el = h('div', {
    class: 'status-area',
    role: polite ? 'status' : 'alert',
    'aria-live': polite ? 'polite' : 'assertive',
    testid,
  });
  const set = (kind, message) => {
    // A newer message replaces the one-time notice the page opened with.
    if (message && kind !== 'busy' && el.isConnected) {
      const flash = document.querySelector('#main [data-testid="flash"]');
      if (flash) flash.remove();
    }
    clear(el);
    el.className = 'status-area';
    if (!message) return;
    el.classList.add(`status-${kind}`);
    if (kind === 'busy') el.append(h('span', { class: 'spinner', 'aria-hidden': 'true' }));
    el.append(h('span', { text: message }));
    el.dataset.kind = kind;
  };
  return {
    el,
    busy: (m) => set('busy', m),
    ok: (m) => set('ok', m),
    error: (m) => set('error', m),
    info: (m) => set('info', m),
    clear: () => { set('', ''); delete el.dataset.kind; },
  };
}

/** Disables a button and swaps its label while `work` runs. */
async function withBusyButton(button, busyLabel, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.textContent = busyLabel;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}

// ---------------------------------------------------------------------------------------------
// Session and layout

/** Bumped on each page render; async loads check it before drawing (see stillOn). */
let routeSeq = 0;

const state = {
  user: null, // {email, role}
  flash: null, // {kind, message} shown once on the next page render
};

const isAdmin = () => state.user && state.user.role === 'admin';

function setFlash(kind, message) {
  state.flash = { kind, message };
}

function renderHeader() {
  const nav = $('#nav');
  const userArea = $('#user');
  clear(nav);
  if (!state.user) {
    nav.hidden = true;
    userArea.hidden = true;
    return;
  }
  const links = [
    { href: '#/incidents', label: 'Incidents', testid: 'nav-incidents', match: '/incidents' },
    { href: '#/query', label: 'Query', testid: 'nav-query', match: '/query' },
  ];
  if (isAdmin()) {
    links.push({
      href: '#/admin/providers',
      label: 'Admin › SIEM Providers',
      testid: 'nav-admin-providers',
      match: '/admin',
    });
  }
  const list = h('ul', { class: 'nav-list' });
  for (const link of links) {
    list.append(h('li', {}, h('a', {
      href: link.href,
      testid: link.testid,
      dataset: { match: link.match },
      text: link.label,
    })));
  }
  nav.append(list);
  nav.hidden = false;
  $('#user-email').textContent = state.user.email;
  const role = $('#user-role');
  role.textContent = state.user.role;
  role.className = `role-badge role-${state.user.role === 'admin' ? 'admin' : 'analyst'}`;
  userArea.hidden = false;
  markCurrentNav();
}

function markCurrentNav() {
  const path = currentPath();
  for (const a of document.querySelectorAll('#nav a')) {
    if (path.startsWith(a.dataset.match)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** The route part of the hash: `#/incidents?status=active` → `/incidents`. */
function currentPath() {
  const hash = window.location.hash || '';
  const path = hash.startsWith('#') ? hash.slice(1) : '';
  return path.split('?')[0] || '/';
}

/** The query part of the hash, e.g. the incident filters. */
function currentQuery() {
  const hash = window.location.hash || '';
  const at = hash.indexOf('?');
  return new URLSearchParams(at >= 0 ? hash.slice(at + 1) : '');
}

/** Replaces the main area with a page and moves focus to its heading. */
function showPage(title, ...content) {
  const main = $('#main');
  clear(main);
  document.title = `${title} · SoCMate`;
  const heading = h('h1', { tabindex: '-1', testid: 'page-title', text: title });
  main.append(heading);
  if (state.flash) {
    const { kind, message } = state.flash;
    state.flash = null;
    main.append(h('p', {
      class: `notice notice-${kind}`,
      role: 'status',
      testid: 'flash',
      text: message,
    }));
    announce(message);
  }
  append(main, content);
  heading.focus({ preventScroll: true });
  window.scrollTo(0, 0);
  return main;
}

// ---------------------------------------------------------------------------------------------
// Sign in / sign out

function renderSignIn(message) {
  state.user = null;
  // Pages still loading must not draw over the sign-in form.
  routeSeq += 1;
  renderHeader();
  const main = $('#main');
  clear(main);
  document.title = 'Sign in · SoCMate';

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
    h('div', { class: 'field' },
      h('label', { for: 'login-email', text: 'Email' }), email),
    h('div', { class: 'field' },
      h('label', { for: 'login-password', text: 'Password' }), password),
    error,
    h('div', { class: 'actions' }, submit),
    status.el);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    error.textContent = '';
    if (!email.value.trim() || !password.value) {
      error.textContent = 'Enter your email and password.';
      error.hidden = false;
      (email.value.trim() ? password : email).focus();
      return;
    }
    status.busy('Signing in…');
    form.setAttribute('aria-busy', 'true');
    try {
      const user = await withBusyButton(submit, 'Signing in…', () => api('POST', '/api/auth/login', {
        email: email.value.trim(),
        password: password.value,
      }, { allow401: true }));
      password.value = '';
      status.clear();
      await startSession(user);
    } catch (e) {
      status.clear();
      password.value = '';
      let text;
      if (e instanceof ApiError && e.status === 401) {
        text = 'The email or password is incorrect.';
      } else if (e instanceof ApiError && e.status === 429) {
        const wait = e.retryAfter != null ? e.retryAfter : 60;
        text = `Too many sign-in attempts; try again in ${wait} seconds.`;
      } else if (e instanceof ApiError && e.status === 422) {
        text = 'Enter a valid email address and your password.';
      } else {
        text = describeError(e);
      }
      error.textContent = text;
      error.hidden = false;
      password.focus();
    } finally {
      form.removeAttribute('aria-busy');
    }
  });

  main.append(form);
  email.focus();
}

async function startSession(user) {
  state.user = { email: user.email, role: user.role };
  renderHeader();
  const path = currentPath();
  if (path === '/' || path === '/login' || path === '') {
    window.location.hash = '#/incidents';
  } else {
    await route();
  }
  announce(`Signed in as ${user.email} (${user.role}).`);
}

async function signOut() {
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

onUnauthenticated = () => {
  if (!state.user) return;
  renderSignIn('Your session has ended. Sign in again to continue.');
};

// ---------------------------------------------------------------------------------------------
// Router

const routes = [
  { pattern: /^\/incidents\/?$/, view: () => incidentsPage() },
  { pattern: /^\/incidents\/([^/]+)$/, view: (m) => incidentDetailPage(decodeURIComponent(m[1])) },
  { pattern: /^\/query\/?$/, view: () => queryPage() },
  { pattern: /^\/admin\/providers\/?$/, view: () => providersPage(), admin: true },
  { pattern: /^\/admin\/providers\/new$/, view: () => providerFormPage(null), admin: true },
  { pattern: /^\/admin\/providers\/([0-9a-f]+)\/edit$/, view: (m) => providerFormPage(m[1]), admin: true },
];

async function route() {
  if (!state.user) return;
  const path = currentPath();
  if (path === '/' || path === '/login') {
    window.location.hash = '#/incidents';
    return;
  }
  markCurrentNav();
  routeSeq += 1;
  for (const r of routes) {
    const match = path.match(r.pattern);
    if (!match) continue;
    if (r.admin && !isAdmin()) {
      showPage('Not available',
        h('p', { class: 'notice notice-error', testid: 'forbidden', text: 'This page is for administrators only.' }),
        h('p', {}, h('a', { href: '#/incidents', text: 'Go to incidents' })));
      return;
    }
    await r.view(match);
    return;
  }
  showPage('Page not found',
    h('p', { text: 'There is no console page at this address.' }),
    h('p', {}, h('a', { href: '#/incidents', text: 'Go to incidents' })));
}

/** True while the page that started an async load is still the one shown. */
function stillOn(seq) {
  return seq === routeSeq;
}

// ---------------------------------------------------------------------------------------------
// Admin › SIEM Providers

const FIELD_INFO = {
  name: {
    label: 'Name',
    hint: 'A label you choose, e.g. "Production Sentinel". Must be unique.',
  },
  provider_type: {
    label: 'Provider type',
    hint: 'Microsoft Sentinel is the provider type supported today.',
  },
  workspace_id: {
    label: 'Workspace ID',
    hint: 'Where to find it: Azure Portal > Log Analytics workspace > Properties > Workspace ID',
    placeholder: '00000000-0000-0000-0000-000000000000',
  },
  tenant_id: {
    label: 'Tenant ID',
    hint: 'Where to find it: Azure Portal > Azure Active Directory > Properties > Tenant ID',
    placeholder: '00000000-0000-0000-0000-000000000000 or contoso.onmicrosoft.com',
  },
  client_id: {
    label: 'Client ID',
    hint: 'Where to find it: Azure Portal > App Registrations > Your app > Application (client) ID',
    placeholder: '00000000-0000-0000-0000-000000000000',
  },
  client_secret: {
    label: 'Client secret',
    hint: 'Where to find it: Azure Portal > App Registrations > Your app > Certificates & secrets (copy the secret\'s Value, not its ID)',
  },
  client_secret_expires_at: {
    label: 'Secret expires (optional)',
    hint: 'The expiry date shown next to the secret under Certificates & secrets. SoCMate warns before it expires.',
  },
  cloud: {
    label: 'Azure cloud',
    hint: 'The national cloud the tenant lives in. Most tenants use Azure public cloud.',
  },
  sync_incidents: {
    label: 'Sync incidents from this provider',
    hint: 'The default provider always syncs; tick this to sync a non-default provider too.',
  },
};

const CLOUDS = [
  ['AzurePublic', 'Azure public cloud'],
  ['AzureUSGovernment', 'Azure US Government'],
  ['AzureChinaCloud', 'Azure China (21Vianet)'],
];

const CHECK_LABELS = {
  token: 'Sign-in token (Entra ID client credentials)',
  log_analytics: 'Log Analytics query on the workspace (Data.Read)',
  incidents: 'Read incidents (SecurityIncident.Read.All)',
  alerts: 'Read alerts (SecurityAlert.Read.All)',
  credentials: 'Stored credentials',
};

function statusBadge(status) {
  const labels = { active: 'Active', error: 'Error', inactive: 'Inactive' };
  return h('span', {
    class: `badge badge-${status === 'active' ? 'ok' : status === 'error' ? 'bad' : 'neutral'}`,
    testid: 'status-badge',
    dataset: { status },
    text: labels[status] || status,
  });
}

function healthText(provider) {
  const status = provider.last_health_status;
  return h('span', { class: 'health', testid: 'health' },
    timeEl(provider.last_health_check, 'Never tested'),
    status ? h('span', {
      class: `badge badge-small badge-${status === 'healthy' ? 'ok' : 'bad'}`,
      dataset: { health: status },
      text: status === 'healthy' ? 'Healthy' : 'Failed',
    }) : null);
}

/** Renders a connection test result: the seed's verdict plus each check with its hint. */
function renderTestResult(result, testid = 'test-result', heading = 'Connection test') {
  const healthy = result.status === 'healthy';
  const checks = Array.isArray(result.checks) ? result.checks : [];
  const latency = typeof result.latency_ms === 'number' ? ` (${Math.round(result.latency_ms)} ms)` : '';
  const list = h('ul', { class: 'checks', testid: 'checks' });
  for (const check of checks) {
    const passed = check.status === 'passed';
    const skipped = check.status === 'skipped';
    const icon = passed ? '✓' : skipped ? '–' : '✗';
    const word = passed ? 'Passed' : skipped ? 'Skipped' : 'Failed';
    list.append(h('li', {
      class: `check check-${check.status}`,
      testid: `check-${check.name}`,
      dataset: { status: check.status, code: check.code || '' },
    },
    h('span', { class: 'check-icon', 'aria-hidden': 'true', text: icon }),
    h('div', { class: 'check-body' },
      h('div', { class: 'check-title' },
        h('strong', { text: CHECK_LABELS[check.name] || check.name }),
        ' ',
        h('span', { class: 'check-word', text: word }),
        check.code ? h('code', { class: 'check-code', testid: 'check-code', text: check.code }) : null,
        typeof check.latency_ms === 'number' && passed
          ? h('span', { class: 'muted', text: ` ${Math.round(check.latency_ms)} ms` }) : null),
      check.message ? h('p', { class: 'check-message', text: check.message }) : null,
      check.hint ? h('p', { class: 'check-hint', testid: 'check-hint', text: check.hint }) : null)));
  }
  return h('section', {
    class: `test-result ${healthy ? 'test-ok' : 'test-bad'}`,
    testid,
    dataset: { status: result.status },
    'aria-label': heading,
  },
  h('p', { class: 'test-verdict', testid: 'test-verdict' },
    h('span', { class: `badge badge-${healthy ? 'ok' : 'bad'}`, text: healthy ? 'Healthy' : 'Error' }),
    ' ',
    h('span', { text: `${result.message || ''}${latency}` })),
  checks.length ? list : null);
}

async function providersPage() {
  const seq = routeSeq;
  const status = statusArea('providers-status');
  const tableHolder = h('div', { class: 'table-wrap', testid: 'providers-table-wrap' });
  const resultHolder = h('div', { testid: 'row-test-result-holder' });
  const addButton = h('a', {
    href: '#/admin/providers/new', class: 'btn btn-primary', testid: 'add-provider', text: 'Add Provider',
  });
  const refreshButton = h('button', { type: 'button', class: 'btn', testid: 'refresh-providers', text: 'Refresh' });
  showPage('SIEM Providers',
    h('p', { class: 'lead', text: 'Sentinel workspaces SoCMate queries and syncs incidents from. One of them is the default for queries and new investigations.' }),
    h('div', { class: 'toolbar' }, addButton, refreshButton),
    status.el,
    tableHolder,
    resultHolder);

  let providers = [];

  const load = async (quiet = false) => {
    if (!quiet) status.busy('Loading providers…');
    try {
      const data = await api('GET', '/api/admin/siem-providers');
      if (!stillOn(seq)) return;
      providers = (data && data.providers) || [];
      if (!quiet) status.clear();
      draw();
    } catch (e) {
      if (!stillOn(seq)) return;
      status.error(`Could not load providers: ${describeError(e)}`);
    }
  };

  refreshButton.addEventListener('click', () => load());

  const draw = () => {
    clear(tableHolder);
    if (!providers.length) {
      tableHolder.append(h('div', { class: 'empty', testid: 'providers-empty' },
        h('p', { text: 'No SIEM provider is configured yet.' }),
        h('p', { text: 'Add your Microsoft Sentinel workspace to run queries and sync incidents. The first provider becomes the default.' })));
      return;
    }
    const table = h('table', { class: 'data', testid: 'providers-table' },
      h('caption', { class: 'sr-only', text: `SIEM providers (${providers.length})` }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Name' }),
        h('th', { scope: 'col', text: 'Workspace ID' }),
        h('th', { scope: 'col', text: 'Status' }),
        h('th', { scope: 'col', text: 'Last health check' }),
        h('th', { scope: 'col', text: 'Client secret' }),
        h('th', { scope: 'col', text: 'Actions' }))));
    const body = h('tbody');
    for (const p of providers) {
      const tr = providerRow(p);
      body.append(tr);
      if (p.secret_expiry_warning) {
        tr.classList.add('has-note');
        body.append(noteRow(p));
      }
    }
    table.append(body);
    tableHolder.append(table);
  };

  const providerRow = (p) => {
    const testBtn = h('button', { type: 'button', class: 'btn btn-small', testid: 'row-test', text: 'Test' });
    const defaultBtn = p.is_default ? null : h('button', {
      type: 'button', class: 'btn btn-small', testid: 'row-set-default', text: 'Set as default',
    });
    const editLink = h('a', {
      href: `#/admin/providers/${encodeURIComponent(p.id)}/edit`,
      class: 'btn btn-small',
      testid: 'row-edit',
      'aria-label': `Edit or rotate secret of ${p.name}`,
      text: 'Edit / rotate secret',
    });
    const syncBtn = h('button', { type: 'button', class: 'btn btn-small', testid: 'row-sync', text: 'Sync incidents' });
    const deleteBtn = h('button', { type: 'button', class: 'btn btn-small btn-danger', testid: 'row-delete', text: 'Delete' });
    for (const [btn, what] of [[testBtn, 'Test'], [defaultBtn, 'Set as default'], [syncBtn, 'Sync incidents of'], [deleteBtn, 'Delete']]) {
      if (btn) btn.setAttribute('aria-label', `${what} ${p.name}`);
    }

    testBtn.addEventListener('click', () => withBusyButton(testBtn, 'Testing…', async () => {
      status.busy(`Testing the connection of “${p.name}”… this can take a few seconds.`);
      clear(resultHolder);
      try {
        const result = await api('POST', `/api/admin/siem-providers/${encodeURIComponent(p.id)}/test`);
        if (!stillOn(seq)) return;
        const verdict = result.status === 'healthy' ? 'passed' : 'failed';
        status[result.status === 'healthy' ? 'ok' : 'error'](`Connection test of “${p.name}” ${verdict}.`);
        resultHolder.append(h('h2', { text: `Test result: ${p.name}` }),
          renderTestResult(result, 'row-test-result', `Test result for ${p.name}`));
        await load(true);
      } catch (e) {
        if (!stillOn(seq)) return;
        status.error(`Could not test “${p.name}”: ${describeError(e)}`);
      }
    }));

    if (defaultBtn) {
      defaultBtn.addEventListener('click', () => withBusyButton(defaultBtn, 'Setting…', async () => {
        status.busy(`Setting “${p.name}” as the default provider…`);
        try {
          const result = await api('PUT', `/api/admin/siem-providers/${encodeURIComponent(p.id)}/default`);
          if (!stillOn(seq)) return;
          status.ok((result && result.message) || `“${p.name}” is now the default provider.`);
          await load(true);
        } catch (e) {
          if (!stillOn(seq)) return;
          status.error(`Could not set “${p.name}” as default: ${describeError(e)}`);
        }
      }));
    }

    syncBtn.addEventListener('click', () => withBusyButton(syncBtn, 'Syncing…', async () => {
      const syncPath = `/api/admin/siem-providers/${encodeURIComponent(p.id)}/sync`;
      status.busy(`Starting an incident sync of “${p.name}”…`);
      try {
        const before = await api('GET', syncPath).catch(() => null);
        const result = await api('POST', syncPath);
        if (!stillOn(seq)) return;
        status.busy(`${(result && result.message) || 'Incident sync started'}; waiting for it to finish…`);
        // Follow the run until it has finished (a run already under way counts too).
        const deadline = Date.now() + 120_000;
        let last = null;
        while (Date.now() < deadline) {
          await new Promise((resolve) => { window.setTimeout(resolve, 700); });
          if (!stillOn(seq)) return;
          last = await api('GET', syncPath);
          const moved = !before
            || last.last_started_at !== before.last_started_at
            || last.last_finished_at !== before.last_finished_at;
          if (last.state === 'idle' && moved && last.last_finished_at) break;
          last = null;
        }
        if (!stillOn(seq)) return;
        if (!last) {
          status.info(`The incident sync of “${p.name}” is still running; new incidents appear under Incidents as it goes.`);
        } else if (last.last_error && last.last_success_at !== last.last_finished_at) {
          status.error(`The incident sync of “${p.name}” failed: ${last.last_error.message || last.last_error.code}`);
        } else {
          status.ok(`Incident sync of “${p.name}” finished: ${plural(last.fetched || 0, 'incident', 'incidents')} read, `
            + `${last.created || 0} new, ${last.updated || 0} updated (totals since the first sync).`);
        }
      } catch (e) {
        if (!stillOn(seq)) return;
        status.error(`Could not sync “${p.name}”: ${describeError(e)}`);
      }
    }));

    deleteBtn.addEventListener('click', async () => {
      const confirmed = await confirmDelete(p);
      if (!confirmed) {
        deleteBtn.focus();
        return;
      }
      status.busy(`Deleting “${p.name}”…`);
      try {
        const result = await api('DELETE', `/api/admin/siem-providers/${encodeURIComponent(p.id)}`);
        if (!stillOn(seq)) return;
        let message = `Deleted “${p.name}”.`;
        if (p.is_default) message += ' It was the default provider: no provider is default now, so set a new default.';
        status.ok(message);
        if (result && result.message) status.el.dataset.serverMessage = result.message;
        await load(true);
        const heading = $('#main h1');
        if (heading) heading.focus();
      } catch (e) {
        if (!stillOn(seq)) return;
        status.error(`Could not delete “${p.name}”: ${describeError(e)}`);
      }
    });

    const nameCell = h('th', { scope: 'row', class: 'name-cell' },
      h('span', { class: 'provider-name', testid: 'provider-name', text: p.name }),
      p.is_default ? h('span', { class: 'badge badge-default', testid: 'default-marker', text: 'Default' }) : null,
      p.sync_incidents && !p.is_default ? h('span', { class: 'badge badge-small badge-neutral', text: 'Syncs incidents' }) : null,
      h('div', { class: 'muted small', text: `${p.provider_type === 'sentinel' ? 'Microsoft Sentinel' : p.provider_type}${p.cloud && p.cloud !== 'AzurePublic' ? ` · ${p.cloud}` : ''}` }));
    return h('tr', {
      testid: 'provider-row',
      dataset: { providerId: p.id, providerName: p.name, isDefault: String(Boolean(p.is_default)) },
    },
    nameCell,
    h('td', {}, h('code', { class: 'mono', testid: 'workspace-id', text: p.workspace_id })),
    h('td', {}, statusBadge(p.status),
      p.secret_expiry_warning ? h('span', {
        class: 'badge badge-small badge-warn',
        testid: 'expiry-badge',
        text: /expired on/.test(p.secret_expiry_warning) ? 'Secret expired' : 'Secret expiring',
      }) : null),
    h('td', {}, healthText(p)),
    h('td', {},
      h('code', { class: 'mono', testid: 'secret-masked', text: p.client_secret_masked }),
      p.client_secret_expires_at
        ? h('div', { class: 'muted small', testid: 'secret-expires', text: `Expires ${formatTime(p.client_secret_expires_at).slice(0, 10)}` }) : null),
    h('td', {}, h('div', { class: 'row-actions' }, testBtn, defaultBtn, editLink, syncBtn, deleteBtn)));
  };

  // The expiry warning is long (it says what to do): it gets its own full-width line.
  const noteRow = (p) => h('tr', { class: 'note-row', dataset: { providerId: p.id, providerName: p.name } },
    h('td', { colspan: '6' },
      h('p', { class: 'expiry-warning', testid: 'expiry-warning', dataset: { providerName: p.name } },
        h('strong', { text: `${p.name}: ` }), p.secret_expiry_warning)));

  await load();
}

/** Asks before deleting; resolves true when the admin confirmed. */
function confirmDelete(provider) {
  const dialog = $('#confirm-dialog');
  const body = $('#confirm-body');
  $('#confirm-title').textContent = `Delete “${provider.name}”?`;
  clear(body);
  body.append(h('p', { testid: 'confirm-message' },
    'The provider ', h('strong', { text: provider.name }),
    ' will no longer be available for queries or incident sync. Its stored secret is destroyed.'));
  if (provider.is_default) {
    body.append(h('p', { class: 'notice notice-warn', testid: 'confirm-default-note' },
      `“${provider.name}” is the default provider. After deleting it no provider is the default until you set a new one; queries without a chosen provider fail until then.`));
  }
  $('#confirm-ok').textContent = `Delete ${provider.name}`;
  return new Promise((resolve) => {
    const onClose = () => {
      dialog.removeEventListener('close', onClose);
      resolve(dialog.returnValue === 'confirm');
    };
    dialog.returnValue = '';
    dialog.addEventListener('close', onClose);
    dialog.showModal();
    $('#confirm-cancel').focus();
  });
}

/** A labelled input with its hint and error slot. */
function field(name, control, { required = false } = {}) {
  const info = FIELD_INFO[name];
  const hintId = `hint-${name}`;
  const errorId = `error-${name}`;
  control.id = control.id || `field-${name}`;
  control.name = name;
  control.dataset.testid = control.dataset.testid || `field-${name}`;
  control.setAttribute('aria-describedby', `${hintId} ${errorId}`);
  if (required) control.setAttribute('aria-required', 'true');
  const isCheckbox = control.type === 'checkbox';
  const label = h('label', { for: control.id },
    info.label, required ? h('span', { class: 'required', 'aria-hidden': 'true', text: ' *' }) : null);
  const wrapper = h('div', { class: `field${isCheckbox ? ' field-check' : ''}`, dataset: { field: name } },
    isCheckbox ? h('div', { class: 'check-row' }, control, label) : [label, control],
    h('p', { class: 'hint', id: hintId, testid: `hint-${name}`, text: info.hint }),
    h('p', { class: 'field-error', id: errorId, testid: `error-${name}`, hidden: true }));
  return wrapper;
}

function setFieldError(form, name, message) {
  const slot = form.querySelector(`#error-${name}`);
  const control = form.querySelector(`[name="${name}"]`);
  if (!slot) return false;
  slot.textContent = message;
  slot.hidden = !message;
  if (control) {
    if (message) control.setAttribute('aria-invalid', 'true');
    else control.removeAttribute('aria-invalid');
  }
  return true;
}

function clearFieldErrors(form) {
  for (const slot of form.querySelectorAll('.field-error')) {
    slot.textContent = '';
    slot.hidden = true;
  }
  for (const control of form.querySelectorAll('[aria-invalid]')) control.removeAttribute('aria-invalid');
}

/** Shows 422 field errors next to their fields; returns the messages that had no field. */
function showFieldErrors(form, errors) {
  const unplaced = [];
  let first = null;
  for (const e of errors) {
    const name = e.field || '';
    if (setFieldError(form, name, e.message)) {
      first = first || form.querySelector(`[name="${name}"]`);
    } else {
      unplaced.push(e.message);
    }
  }
  if (first) first.focus();
  return unplaced;
}

function dateInputToRfc3339(value) {
  // A date input gives YYYY-MM-DD; the API takes RFC 3339 UTC.
  return value ? `${value}T00:00:00Z` : null;
}

async function providerFormPage(id) {
  const seq = routeSeq;
  const editing = Boolean(id);
  let existing = null;
  if (editing) {
    showPage('Edit SIEM provider', h('p', { class: 'muted', role: 'status', text: 'Loading provider…' }));
    try {
      existing = await api('GET', `/api/admin/siem-providers/${encodeURIComponent(id)}`);
    } catch (e) {
      if (!stillOn(seq)) return;
      showPage('Edit SIEM provider',
        h('p', { class: 'notice notice-error', role: 'alert', text: `Could not load the provider: ${describeError(e)}` }),
        h('p', {}, h('a', { href: '#/admin/providers', text: 'Back to SIEM Providers' })));
      return;
    }
    if (!stillOn(seq)) return;
  }

  const input = (name, attrs = {}) => h('input', {
    type: 'text', autocomplete: 'off', spellcheck: 'false', ...FIELD_INFO[name].placeholder ? { placeholder: FIELD_INFO[name].placeholder } : {}, ...attrs,
  });
  const controls = {
    name: input('name', { maxlength: '200', required: true }),
    provider_type: h('select', {}, h('option', { value: 'sentinel', text: 'Microsoft Sentinel' })),
    workspace_id: input('workspace_id', { required: true, class: 'mono' }),
    tenant_id: input('tenant_id', { required: true, class: 'mono' }),
    client_id: input('client_id', { required: true, class: 'mono' }),
    client_secret: h('input', {
      type: 'password', autocomplete: 'new-password', spellcheck: 'false', maxlength: '1024',
      required: !editing,
    }),
    client_secret_expires_at: h('input', { type: 'date' }),
    cloud: h('select', {}, CLOUDS.map(([value, label]) => h('option', { value, text: label }))),
    sync_incidents: h('input', { type: 'checkbox' }),
  };
  if (editing) {
    controls.provider_type.disabled = true;
    for (const key of ['name', 'workspace_id', 'tenant_id', 'client_id']) controls[key].value = existing[key] || '';
    controls.cloud.value = existing.cloud || 'AzurePublic';
    controls.sync_incidents.checked = Boolean(existing.sync_incidents);
    if (existing.client_secret_expires_at) {
      controls.client_secret_expires_at.value = String(existing.client_secret_expires_at).slice(0, 10);
    }
  }

  const secretField = field('client_secret', controls.client_secret, { required: !editing });
  const expiryField = field('client_secret_expires_at', controls.client_secret_expires_at);
  if (editing) {
    secretField.querySelector('.hint').after(h('p', { class: 'hint hint-strong', testid: 'secret-keep-note' },
      `Leave empty to keep the current secret (${existing.client_secret_masked}). Enter a new value to rotate it.`));
    // The stored date belongs to the old secret: a new secret starts without one (as the API does).
    const storedDate = controls.client_secret_expires_at.value;
    const expiryNote = h('p', { class: 'hint hint-strong', testid: 'expiry-reset-note', hidden: true },
      'The stored date belonged to the old secret. Enter the new secret\'s expiry date, or leave it empty.');
    expiryField.querySelector('.hint').after(expiryNote);
    controls.client_secret.addEventListener('input', () => {
      if (controls.client_secret.value && storedDate && controls.client_secret_expires_at.value === storedDate) {
        controls.client_secret_expires_at.value = '';
        expiryNote.hidden = false;
      }
    });
  }

  const testButton = h('button', { type: 'button', class: 'btn', testid: 'test-connection', text: 'Test Connection' });
  const saveButton = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'save-provider', text: editing ? 'Save changes' : 'Save' });
  const cancelLink = h('a', { href: '#/admin/providers', class: 'btn btn-quiet', testid: 'cancel-provider', text: 'Cancel' });
  const status = statusArea('form-status');
  const resultHolder = h('div', { class: 'result-holder', testid: 'test-result-holder' });

  const form = h('form', { class: 'card provider-form', testid: 'provider-form', novalidate: true },
    h('fieldset', { class: 'grid' },
      h('legend', { text: 'Provider' }),
      field('name', controls.name, { required: true }),
      field('provider_type', controls.provider_type)),
    h('fieldset', { class: 'grid' },
      h('legend', { text: 'Connection' }),
      field('workspace_id', controls.workspace_id, { required: true }),
      field('tenant_id', controls.tenant_id, { required: true }),
      field('client_id', controls.client_id, { required: true }),
      secretField,
      expiryField,
      field('cloud', controls.cloud)),
    h('fieldset', {},
      h('legend', { text: 'Incidents' }),
      field('sync_incidents', controls.sync_incidents)),
    h('p', { class: 'form-error', role: 'alert', testid: 'form-error', hidden: true }),
    h('div', { class: 'actions' }, testButton, saveButton, cancelLink),
    status.el,
    resultHolder);

  const formError = form.querySelector('[data-testid="form-error"]');
  const showFormError = (message) => {
    formError.textContent = message || '';
    formError.hidden = !message;
  };

  const connectionFields = ['workspace_id', 'tenant_id', 'client_id', 'cloud'];
  const values = () => ({
    name: controls.name.value.trim(),
    provider_type: 'sentinel',
    workspace_id: controls.workspace_id.value.trim(),
    tenant_id: controls.tenant_id.value.trim(),
    client_id: controls.client_id.value.trim(),
    client_secret: controls.client_secret.value,
    cloud: controls.cloud.value,
    sync_incidents: controls.sync_incidents.checked,
    client_secret_expires_at: dateInputToRfc3339(controls.client_secret_expires_at.value),
  });

  // Browser-side checks only for emptiness; the server's 422 names every other problem.
  const checkRequired = (v, forTest) => {
    const missing = [];
    const need = forTest ? ['workspace_id', 'tenant_id', 'client_id'] : ['name', 'workspace_id', 'tenant_id', 'client_id'];
    for (const key of need) if (!v[key]) missing.push(key);
    if (!editing && !v.client_secret) missing.push('client_secret');
    for (const key of missing) setFieldError(form, key, `${FIELD_INFO[key].label} is required.`);
    if (missing.length) form.querySelector(`[name="${missing[0]}"]`).focus();
    return missing.length === 0;
  };

  const busy = (on) => {
    testButton.disabled = on;
    saveButton.disabled = on;
    form.setAttribute('aria-busy', on ? 'true' : 'false');
  };

  testButton.addEventListener('click', async () => {
    clearFieldErrors(form);
    showFormError('');
    clear(resultHolder);
    const v = values();
    let request;
    if (editing && !v.client_secret) {
      const changed = connectionFields.some((k) => (existing[k] || (k === 'cloud' ? 'AzurePublic' : '')) !== v[k]);
      if (changed) {
        setFieldError(form, 'client_secret', 'Enter the client secret to test changed connection details (or save first, then test the saved provider).');
        controls.client_secret.focus();
        return;
      }
      request = () => api('POST', `/api/admin/siem-providers/${encodeURIComponent(id)}/test`);
    } else {
      if (!checkRequired(v, true)) return;
      const body = {
        provider_type: 'sentinel',
        workspace_id: v.workspace_id,
        tenant_id: v.tenant_id,
        client_id: v.client_id,
        client_secret: v.client_secret,
        cloud: v.cloud,
      };
      request = () => api('POST', '/api/admin/siem-providers/test', body);
    }
    busy(true);
    testButton.textContent = 'Testing…';
    testButton.setAttribute('aria-busy', 'true');
    status.busy('Testing the connection… this can take a few seconds.');
    try {
      const result = await request();
      if (!stillOn(seq)) return;
      const healthy = result.status === 'healthy';
      const failed = (result.checks || []).filter((c) => c.status === 'failed').map((c) => c.name);
      status[healthy ? 'ok' : 'error'](healthy
        ? 'Connection test passed: every check succeeded.'
        : `Connection test failed${failed.length ? ` (${failed.join(', ')})` : ''}. See each check's hint below.`);
      resultHolder.append(renderTestResult(result));
    } catch (e) {
      if (!stillOn(seq)) return;
      status.clear();
      if (e instanceof ApiError && e.status === 422 && e.errors.length) {
        const rest = showFieldErrors(form, e.errors);
        showFormError(rest.length ? rest.join(' ') : 'Fix the highlighted fields, then test again.');
      } else if (e instanceof ApiError && e.status === 429) {
        showFormError(`Too many connection tests; try again in ${e.retryAfter != null ? e.retryAfter : 60} seconds.`);
      } else {
        showFormError(`The connection test could not run: ${describeError(e)}`);
      }
    } finally {
      testButton.textContent = 'Test Connection';
      testButton.removeAttribute('aria-busy');
      busy(false);
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    showFormError('');
    const v = values();
    if (!checkRequired(v, false)) return;
    let body;
    if (editing) {
      body = {};
      for (const key of ['name', 'workspace_id', 'tenant_id', 'client_id']) {
        if (v[key] !== existing[key]) body[key] = v[key];
      }
      if (v.cloud !== (existing.cloud || 'AzurePublic')) body.cloud = v.cloud;
      if (v.sync_incidents !== Boolean(existing.sync_incidents)) body.sync_incidents = v.sync_incidents;
      if (v.client_secret) body.client_secret = v.client_secret;
      const before = existing.client_secret_expires_at ? String(existing.client_secret_expires_at).slice(0, 10) : '';
      // A rotated secret always says its expiry (null: none); otherwise only a changed date is sent.
      if (v.client_secret || controls.client_secret_expires_at.value !== before) {
        body.client_secret_expires_at = v.client_secret_expires_at;
      }
      if (!Object.keys(body).length) {
        status.info('Nothing changed.');
        return;
      }
    } else {
      body = {
        name: v.name,
        provider_type: 'sentinel',
        workspace_id: v.workspace_id,
        tenant_id: v.tenant_id,
        client_id: v.client_id,
        client_secret: v.client_secret,
      };
      if (v.cloud !== 'AzurePublic') body.cloud = v.cloud;
      if (v.sync_incidents) body.sync_incidents = true;
      if (v.client_secret_expires_at) body.client_secret_expires_at = v.client_secret_expires_at;
    }
    busy(true);
    saveButton.textContent = 'Saving…';
    status.busy('Saving…');
    try {
      const saved = editing
        ? await api('PATCH', `/api/admin/siem-providers/${encodeURIComponent(id)}`, body)
        : await api('POST', '/api/admin/siem-providers', body);
      // Never keep a secret in the page once it is stored.
      controls.client_secret.value = '';
      if (!stillOn(seq)) return;
      let message;
      if (editing) {
        message = `Saved “${saved.name}”.${body.client_secret ? ' The client secret was rotated.' : ''}`;
      } else {
        message = `Added “${saved.name}”.${saved.is_default ? ' It is the default provider.' : ''}`;
      }
      setFlash('ok', message);
      window.location.hash = '#/admin/providers';
    } catch (e) {
      if (!stillOn(seq)) return;
      status.clear();
      if (e instanceof ApiError && e.status === 422 && e.errors.length) {
        const rest = showFieldErrors(form, e.errors);
        showFormError(rest.length ? rest.join(' ') : 'Fix the highlighted fields, then save again.');
      } else if (e instanceof ApiError && e.code === 'name_taken') {
        setFieldError(form, 'name', e.message);
        controls.name.focus();
        showFormError('');
      } else {
        showFormError(`Could not save: ${describeError(e)}`);
      }
    } finally {
      saveButton.textContent = editing ? 'Save changes' : 'Save';
      busy(false);
    }
  });

  const title = editing ? `Edit “${existing.name}”` : 'Add Provider';
  showPage(title,
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/admin/providers', text: '← SIEM Providers' })),
    editing
      ? h('p', { class: 'lead', text: 'Rename or re-point the provider, or rotate its client secret. Changing connection details resets its health until the next test.' })
      : h('p', { class: 'lead', text: 'Fill in the connection details of the Azure App Registration, test the connection, then save. The App Registration needs Log Analytics Data.Read, SecurityIncident.Read.All and SecurityAlert.Read.All as application permissions with admin consent.' }),
    form);
}

// ---------------------------------------------------------------------------------------------
// Incidents

const INCIDENT_STATUSES = [
  ['', 'Any status'], ['active', 'Active'], ['inProgress', 'In progress'], ['resolved', 'Resolved'],
  ['redirected', 'Redirected (merged)'],
];
const SEVERITIES = [
  ['', 'Any severity'], ['high', 'High'], ['medium', 'Medium'], ['low', 'Low'],
  ['informational', 'Informational'], ['unknown', 'Unknown'],
];

const incidentsView = { cursors: [null], page: 0, key: '', listHash: '#/incidents' };
const DEFAULT_PAGE_SIZE = 25;

function severityBadge(severity) {
  const s = severity || 'unknown';
  return h('span', { class: `badge sev sev-${s.replace(/[^a-zA-Z]/g, '')}`, testid: 'severity', text: s });
}

function humanStatus(value) {
  const match = INCIDENT_STATUSES.find(([v]) => v === value);
  return match ? match[1] : (value || '—');
}

async function incidentsPage() {
  const seq = routeSeq;
  const view = incidentsView;
  // Filters live in the address (`#/incidents?status=active&severity=high`), so a filtered
  // list can be bookmarked and the detail page's back link returns to it.
  const query = currentQuery();
  view.status = query.get('status') || '';
  view.severity = query.get('severity') || '';
  const askedLimit = Number.parseInt(query.get('limit') || '', 10);
  const PAGE_SIZE = askedLimit >= 1 && askedLimit <= 200 ? askedLimit : DEFAULT_PAGE_SIZE;
  const key = `${view.status}|${view.severity}|${PAGE_SIZE}`;
  if (key !== view.key) {
    view.key = key;
    view.cursors = [null];
    view.page = 0;
  }
  view.listHash = window.location.hash || '#/incidents';
  const status = statusArea('incidents-status');
  const statusSelect = h('select', { id: 'filter-status', testid: 'filter-status' },
    INCIDENT_STATUSES.map(([v, l]) => h('option', { value: v, text: l })));
  const severitySelect = h('select', { id: 'filter-severity', testid: 'filter-severity' },
    SEVERITIES.map(([v, l]) => h('option', { value: v, text: l })));
  statusSelect.value = view.status;
  severitySelect.value = view.severity;
  const applyButton = h('button', { type: 'submit', class: 'btn', testid: 'apply-filters', text: 'Apply filters' });
  const filters = h('form', { class: 'filters', testid: 'incident-filters', 'aria-label': 'Filter incidents' },
    h('div', { class: 'field inline' }, h('label', { for: 'filter-status', text: 'Status' }), statusSelect),
    h('div', { class: 'field inline' }, h('label', { for: 'filter-severity', text: 'Severity' }), severitySelect),
    applyButton);
  const tableHolder = h('div', { class: 'table-wrap' });
  const prevButton = h('button', { type: 'button', class: 'btn', testid: 'prev-page', text: '← Previous page' });
  const nextButton = h('button', { type: 'button', class: 'btn', testid: 'next-page', text: 'Next page →' });
  const pageInfo = h('span', { class: 'muted', testid: 'page-info' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Incident pages' }, prevButton, pageInfo, nextButton);

  showPage('Incidents',
    h('p', { class: 'lead', text: 'Incidents synced from your SIEM providers, most recently updated first.' }),
    filters, status.el, tableHolder, pager);

  const load = async () => {
    status.busy('Loading incidents…');
    tableHolder.setAttribute('aria-busy', 'true');
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (view.status) params.set('status', view.status);
    if (view.severity) params.set('severity', view.severity);
    const cursor = view.cursors[view.page];
    if (cursor) params.set('cursor', cursor);
    try {
      const data = await api('GET', `/api/incidents?${params}`);
      if (!stillOn(seq)) return;
      const incidents = data.incidents || [];
      view.cursors[view.page + 1] = data.next_cursor || null;
      clear(tableHolder);
      if (!incidents.length) {
        tableHolder.append(h('div', { class: 'empty', testid: 'incidents-empty' },
          h('p', { text: view.status || view.severity ? 'No incident matches these filters.' : 'No incidents yet.' }),
          isAdmin() && !view.status && !view.severity
            ? h('p', {}, 'Incidents appear after a sync of the default provider. Admins can start one from ', h('a', { href: '#/admin/providers', text: 'SIEM Providers' }), '.')
            : null));
      } else {
        const body = h('tbody');
        for (const incident of incidents) {
          body.append(h('tr', { testid: 'incident-row', dataset: { incidentId: incident.id } },
            h('td', {}, h('a', {
              href: `#/incidents/${encodeURIComponent(incident.id)}`,
              testid: 'incident-link',
              text: incident.display_name || `Incident ${incident.external_id}`,
            }), h('div', { class: 'muted small', text: `#${incident.external_id}` })),
            h('td', {}, severityBadge(incident.severity)),
            h('td', { testid: 'incident-status', text: humanStatus(incident.status) }),
            h('td', { text: incident.assigned_to || '—' }),
            h('td', {}, timeEl(incident.last_update_at, '—'))));
        }
        tableHolder.append(h('table', { class: 'data', testid: 'incidents-table' },
          h('caption', { class: 'sr-only', text: 'Incidents' }),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', text: 'Incident' }),
            h('th', { scope: 'col', text: 'Severity' }),
            h('th', { scope: 'col', text: 'Status' }),
            h('th', { scope: 'col', text: 'Assigned to' }),
            h('th', { scope: 'col', text: 'Last updated' }))),
          body));
      }
      const total = typeof data.total === 'number' ? data.total : incidents.length;
      const first = view.page * PAGE_SIZE + (incidents.length ? 1 : 0);
      const last = view.page * PAGE_SIZE + incidents.length;
      pageInfo.textContent = incidents.length
        ? `${first}–${last} of ${plural(total, 'incident', 'incidents')}`
        : plural(total, 'incident', 'incidents');
      prevButton.disabled = view.page === 0;
      nextButton.disabled = !data.next_cursor;
      status.clear();
      status.el.dataset.total = String(total);
      announce(`${plural(total, 'incident', 'incidents')} found.`);
    } catch (e) {
      if (!stillOn(seq)) return;
      status.error(`Could not load incidents: ${describeError(e)}`);
    } finally {
      tableHolder.removeAttribute('aria-busy');
    }
  };

  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (statusSelect.value) params.set('status', statusSelect.value);
    if (severitySelect.value) params.set('severity', severitySelect.value);
    if (PAGE_SIZE !== DEFAULT_PAGE_SIZE) params.set('limit', String(PAGE_SIZE));
    view.status = statusSelect.value;
    view.severity = severitySelect.value;
    view.key = `${view.status}|${view.severity}|${PAGE_SIZE}`;
    view.cursors = [null];
    view.page = 0;
    const text = params.toString();
    view.listHash = `#/incidents${text ? `?${text}` : ''}`;
    // replaceState: no hashchange, so the page is not rebuilt and focus stays on the form.
    history.replaceState(null, '', view.listHash);
    load();
  });
  nextButton.addEventListener('click', () => {
    if (!view.cursors[view.page + 1]) return;
    view.page += 1;
    load();
  });
  prevButton.addEventListener('click', () => {
    if (view.page === 0) return;
    view.page -= 1;
    load();
  });
  await load();
}

function detailRow(label, value) {
  if (value === undefined || value === null || value === '' || (Array.isArray(value) && !value.length)) {
    return [h('dt', { text: label }), h('dd', { class: 'muted', text: '—' })];
  }
  return [h('dt', { text: label }), h('dd', {}, value)];
}

function tagList(tags) {
  if (!Array.isArray(tags) || !tags.length) return null;
  return h('ul', { class: 'tags' }, tags.map((t) => h('li', { class: 'tag', text: typeof t === 'string' ? t : JSON.stringify(t) })));
}

/** Only http(s) links from the SIEM become clickable. */
function safeLink(url, text) {
  if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) return null;
  return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', text });
}

async function incidentDetailPage(id) {
  const seq = routeSeq;
  showPage('Incident', h('p', { class: 'muted', role: 'status', text: 'Loading incident…' }));
  let incident;
  try {
    incident = await api('GET', `/api/incidents/${encodeURIComponent(id)}`);
  } catch (e) {
    if (!stillOn(seq)) return;
    showPage('Incident',
      h('p', { class: 'breadcrumb' }, h('a', { href: '#/incidents', text: '← Incidents' })),
      h('p', { class: 'notice notice-error', role: 'alert', testid: 'incident-error',
        text: e instanceof ApiError && e.status === 404 ? 'This incident does not exist.' : `Could not load the incident: ${describeError(e)}` }));
    return;
  }
  if (!stillOn(seq)) return;
  const alerts = Array.isArray(incident.alerts) ? incident.alerts : [];
  const comments = Array.isArray(incident.comments) ? incident.comments : [];
  const dl = h('dl', { class: 'details', testid: 'incident-details' },
    detailRow('Severity', severityBadge(incident.severity)),
    detailRow('Status', h('span', { testid: 'detail-status', text: humanStatus(incident.status) })),
    detailRow('Classification', incident.classification),
    detailRow('Determination', incident.determination),
    detailRow('Assigned to', incident.assigned_to),
    detailRow('Created', incident.created_at ? timeEl(incident.created_at) : null),
    detailRow('Last updated', incident.last_update_at ? timeEl(incident.last_update_at) : null),
    detailRow('SIEM incident id', h('code', { text: incident.external_id })),
    detailRow('Tags', tagList([...(incident.custom_tags || []), ...(incident.system_tags || [])])),
    detailRow('Open in the SIEM', safeLink(incident.incident_web_url, 'Microsoft Defender portal ↗')));

  const alertRows = alerts.map((a) => h('tr', { testid: 'alert-row' },
    h('td', {},
      h('span', { class: 'alert-title', text: a.title || a.display_name || a.external_id }),
      a.description ? h('details', {}, h('summary', { text: 'Description' }), h('p', { class: 'pre', text: a.description })) : null),
    h('td', {}, severityBadge(a.severity)),
    h('td', { text: a.status || '—' }),
    h('td', { text: a.category || '—' }),
    h('td', { text: a.service_source || a.detection_source || '—' }),
    h('td', {}, timeEl(a.created_at, '—'))));

  showPage(incident.display_name || `Incident ${incident.external_id}`,
    h('p', { class: 'breadcrumb' }, h('a', { href: incidentsView.listHash || '#/incidents', testid: 'back-to-incidents', text: '← Incidents' })),
    incident.description ? h('p', { class: 'lead', testid: 'incident-description', text: incident.description }) : null,
    dl,
    h('h2', { id: 'alerts-heading', text: `Alerts (${alerts.length})` }),
    alerts.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'data', testid: 'alerts-table', 'aria-labelledby': 'alerts-heading' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', text: 'Alert' }),
          h('th', { scope: 'col', text: 'Severity' }),
          h('th', { scope: 'col', text: 'Status' }),
          h('th', { scope: 'col', text: 'Category' }),
          h('th', { scope: 'col', text: 'Source' }),
          h('th', { scope: 'col', text: 'Created' }))),
        h('tbody', {}, alertRows)))
      : h('p', { class: 'muted', testid: 'alerts-empty', text: 'No alerts are linked to this incident.' }),
    comments.length ? [
      h('h2', { text: `Comments (${comments.length})` }),
      h('ul', { class: 'comments' }, comments.map((c) => h('li', {},
        h('p', { class: 'pre', text: c.comment || JSON.stringify(c) }),
        h('p', { class: 'muted small' }, c.created_by_display_name || '', ' ', c.created_date_time ? timeEl(c.created_date_time) : null)))),
    ] : null);
}

// ---------------------------------------------------------------------------------------------
// Query console

const TIMESPANS = [
  ['PT1H', 'Last hour'], ['P1D', 'Last 24 hours'], ['P7D', 'Last 7 days'], ['P30D', 'Last 30 days'],
];
const MAX_RENDERED_ROWS = 1000;
const queryView = { query: 'SecurityIncident | summarize count() by Status', timespan: 'P1D', provider: '' };

function cellText(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function renderTable(table, index) {
  const columns = Array.isArray(table.columns) ? table.columns : [];
  const rows = Array.isArray(table.rows) ? table.rows : [];
  const shown = rows.slice(0, MAX_RENDERED_ROWS);
  const captionId = `result-caption-${index}`;
  const body = h('tbody');
  for (const row of shown) {
    const tr = h('tr');
    columns.forEach((col, i) => {
      const text = cellText(row[i]);
      tr.append(text === null
        ? h('td', { class: 'null', text: 'null' })
        : h('td', { class: /^(long|int|real|decimal)$/.test(col.type) ? 'num' : '', text }));
    });
    body.append(tr);
  }
  return h('section', { class: 'result-table', testid: 'result-table', dataset: { table: table.name || '' } },
    h('h3', { id: captionId },
      table.name || `Table ${index + 1}`,
      h('span', { class: 'muted', text: ` · ${plural(rows.length, 'row', 'rows')}` })),
    rows.length > shown.length
      ? h('p', { class: 'notice notice-info', text: `Showing the first ${shown.length.toLocaleString('en-US')} of ${rows.length.toLocaleString('en-US')} rows.` })
      : null,
    h('div', { class: 'table-wrap scroll' },
      h('table', { class: 'data compact', 'aria-labelledby': captionId },
        h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' },
          c.name, h('span', { class: 'col-type', text: c.type })))),
        ),
        body)));
}

function upstreamMessages(upstream) {
  const out = [];
  let node = upstream;
  for (let depth = 0; node && depth < 8; depth += 1) {
    if (node.message) out.push(node.code ? `${node.code}: ${node.message}` : node.message);
    node = node.innererror || node.innerError;
  }
  return out;
}

async function queryPage() {
  const seq = routeSeq;
  const view = queryView;
  const providerSelect = h('select', { id: 'query-provider', testid: 'query-provider' },
    h('option', { value: '', text: 'Default provider' }));
  const textarea = h('textarea', {
    id: 'query-text', testid: 'query-text', rows: '5', spellcheck: 'false', class: 'mono',
    'aria-describedby': 'query-hint', autocomplete: 'off',
  });
  textarea.value = view.query;
  const timespanSelect = h('select', { id: 'query-timespan', testid: 'query-timespan' },
    TIMESPANS.map(([v, l]) => h('option', { value: v, text: l })));
  timespanSelect.value = view.timespan;
  const runButton = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'run-query', text: 'Run' });
  const status = statusArea('query-status');
  const results = h('div', { class: 'results', testid: 'query-results' });

  const form = h('form', { class: 'card query-form', testid: 'query-form', novalidate: true },
    h('div', { class: 'query-controls' },
      h('div', { class: 'field inline' }, h('label', { for: 'query-provider', text: 'Provider' }), providerSelect),
      h('div', { class: 'field inline' }, h('label', { for: 'query-timespan', text: 'Time range' }), timespanSelect)),
    h('div', { class: 'field' },
      h('label', { for: 'query-text', text: 'KQL query' }),
      textarea,
      h('p', { class: 'hint', id: 'query-hint', text: 'Runs on Log Analytics through the chosen provider. Ctrl+Enter runs the query. The time range applies on top of the query\'s own filters.' })),
    h('div', { class: 'actions' }, runButton));

  showPage('Query', h('p', { class: 'lead', text: 'Run KQL against a Sentinel workspace.' }), form, status.el, results);

  if (isAdmin()) {
    api('GET', '/api/admin/siem-providers').then((data) => {
      if (!stillOn(seq)) return;
      const providers = (data && data.providers) || [];
      const def = providers.find((p) => p.is_default);
      providerSelect.options[0].textContent = def ? `Default provider (${def.name})` : 'Default provider (none set)';
      for (const p of providers) {
        providerSelect.append(h('option', { value: p.id, text: `${p.name}${p.is_default ? ' (default)' : ''}` }));
      }
      if (view.provider && providers.some((p) => p.id === view.provider)) providerSelect.value = view.provider;
    }).catch(() => { /* the default provider still works */ });
  }

  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const query = textarea.value;
    view.query = query;
    view.timespan = timespanSelect.value;
    view.provider = providerSelect.value;
    clear(results);
    if (!query.trim()) {
      status.error('Enter a KQL query to run.');
      textarea.focus();
      return;
    }
    const body = { query, timespan: view.timespan };
    if (view.provider) body.provider_id = view.provider;
    status.busy('Running the query…');
    results.setAttribute('aria-busy', 'true');
    const started = performance.now();
    try {
      const result = await withBusyButton(runButton, 'Running…', () => api('POST', '/api/siem/query', body));
      if (!stillOn(seq)) return;
      const tables = Array.isArray(result.tables) ? result.tables : [];
      const rows = tables.reduce((n, t) => n + (Array.isArray(t.rows) ? t.rows.length : 0), 0);
      const latency = typeof result.latency_ms === 'number' ? result.latency_ms : performance.now() - started;
      status.ok(`Query finished: ${plural(rows, 'row', 'rows')} in ${plural(tables.length, 'table', 'tables')} (${Math.round(latency)} ms).`);
      if (result.partial) {
        const detail = result.error ? upstreamMessages(result.error).join(' — ') : '';
        results.append(h('p', { class: 'notice notice-warn', role: 'alert', testid: 'partial-notice' },
          h('strong', { text: 'Partial results. ' }),
          `Log Analytics returned only part of the result${detail ? `: ${detail}` : '.'}`));
      }
      if (result.truncated) {
        results.append(h('p', { class: 'notice notice-warn', testid: 'truncated-notice' },
          h('strong', { text: 'Truncated. ' }),
          'The result has more rows than the server keeps; rows beyond the limit were dropped. Narrow the query or the time range.'));
      }
      const option = Array.from(providerSelect.options).find((o) => o.value && o.value === result.provider_id);
      const providerLabel = option ? `“${option.textContent.replace(/ \(default\)$/, '')}” (${result.provider_id})` : result.provider_id || '';
      results.append(h('p', { class: 'muted small', testid: 'query-meta' },
        `Query ${result.query_id || ''} ran on provider ${providerLabel}.`));
      if (!tables.length) results.append(h('p', { class: 'muted', text: 'The query returned no tables.' }));
      tables.forEach((t, i) => results.append(renderTable(t, i)));
    } catch (e) {
      if (!stillOn(seq)) return;
      status.clear();
      const lines = [];
      if (e instanceof ApiError && e.code === 'no_default_provider') {
        lines.push(isAdmin()
          ? 'No default SIEM provider is set. Choose a provider above, or set a default under Admin › SIEM Providers.'
          : 'No default SIEM provider is set. Ask an administrator to set one.');
      } else if (e instanceof ApiError && e.status === 503 && e.code === 'upstream_throttled') {
        lines.push(`The SIEM is throttling queries; try again in ${e.retryAfter != null ? `${e.retryAfter} seconds` : 'a moment'}.`);
      } else {
        lines.push(describeError(e));
      }
      const upstream = e instanceof ApiError ? upstreamMessages(e.problem.upstream) : [];
      results.append(h('div', { class: 'notice notice-error', role: 'alert', testid: 'query-error' },
        h('p', {}, h('strong', { text: e instanceof ApiError && e.code === 'query_invalid' ? 'The query is invalid. ' : 'The query failed. ' }), lines.join(' ')),
        upstream.length > 1 ? h('ul', { class: 'small' }, upstream.slice(1).map((m) => h('li', { text: m }))) : null,
        e instanceof ApiError && e.code ? h('p', { class: 'muted small' }, 'Error code ', h('code', { text: e.code })) : null));
    } finally {
      results.removeAttribute('aria-busy');
    }
  });
  textarea.focus();
}

// ---------------------------------------------------------------------------------------------
// Start

async function boot() {
  $('#sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', () => { route(); });
  try {
    const me = await api('GET', '/api/auth/me', undefined, { allow401: true });
    await startSession(me);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      renderSignIn();
    } else {
      const main = $('#main');
      clear(main);
      main.append(h('h1', { text: 'SoCMate is unavailable' }),
        h('p', { class: 'notice notice-error', role: 'alert', text: describeError(e) }),
        h('p', {}, h('button', { type: 'button', class: 'btn', onclick: () => window.location.reload(), text: 'Try again' })));
    }
  }
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
