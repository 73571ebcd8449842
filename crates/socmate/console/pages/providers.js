// Admin › SIEM Providers: the list, with each provider's status, health and actions.

import { api, describeError, providerTypes } from '/console/api.js';
import { $, append, clear, h } from '/console/dom.js';
import { currentPage, showPage, stillOn } from '/console/shell.js';
import { confirmAction, formatTime, plural, sleep, statusArea, withBusyButton } from '/console/ui.js';
import { healthText, renderTestResult, statusBadge, typeNamed } from '/console/pages/provider-parts.js';

const base = (p) => `/api/admin/siem-providers/${encodeURIComponent(p.id)}`;

export async function providersPage() {
  const seq = currentPage();
  const status = statusArea('providers-status');
  const warningHolder = h('div', { testid: 'providers-health-warning-holder' });
  const tableHolder = h('div', { class: 'table-wrap', testid: 'providers-table-wrap' });
  const resultHolder = h('div', { testid: 'row-test-result-holder' });
  const refreshButton = h('button', { type: 'button', class: 'btn', testid: 'refresh-providers', text: 'Refresh' });
  showPage('SIEM Providers',
    h('p', { class: 'lead', text: 'The SIEM connections SoCMate queries and syncs incidents from. One of them is the default for queries and new investigations.' }),
    h('div', { class: 'toolbar' },
      h('a', { href: '#/admin/providers/new', class: 'btn btn-primary', testid: 'add-provider', text: 'Add Provider' }),
      refreshButton),
    warningHolder, status.el, tableHolder, resultHolder);

  const page = { seq, status, resultHolder, types: [], reload: null };
  page.reload = async (quiet = false) => {
    if (!quiet) status.busy('Loading providers…');
    try {
      const [data, types] = await Promise.all([api('GET', '/api/admin/siem-providers'), providerTypes()]);
      if (!stillOn(seq)) return;
      page.types = types;
      const providers = (data && data.providers) || [];
      // One small page of history each: the summary is what the list shows.
      const health = await Promise.all(providers.map((p) => api('GET', `${base(p)}/health?limit=1`).catch(() => null)));
      if (!stillOn(seq)) return;
      page.health = new Map(providers.map((p, i) => [p.id, health[i]]));
      if (!quiet) status.clear();
      append(clear(warningHolder), [healthWarning(providers, page.health)]);
      clear(tableHolder).append(providersTable(providers, page));
    } catch (e) {
      if (stillOn(seq)) status.error(`Could not load providers: ${describeError(e)}`);
    }
  };
  refreshButton.addEventListener('click', () => page.reload());
  await page.reload();
}

function providersTable(providers, page) {
  if (!providers.length) {
    return h('div', { class: 'empty', testid: 'providers-empty' },
      h('p', { text: 'No SIEM provider is configured yet.' }),
      h('p', { text: 'Add one to run queries and sync incidents. The first provider becomes the default.' }));
  }
  const body = h('tbody');
  for (const p of providers) {
    const tr = providerRow(p, page);
    body.append(tr);
    if (p.secret_expiry_warning) {
      tr.classList.add('has-note');
      body.append(noteRow(p));
    }
    const health = page.health && page.health.get(p.id);
    if (health && health.summary) {
      tr.classList.add('has-note');
      body.append(healthRow(p, health.summary));
    }
  }
  return h('table', { class: 'data stack-narrow', testid: 'providers-table' },
    h('caption', { class: 'sr-only', text: `SIEM providers (${providers.length})` }),
    h('thead', {}, h('tr', {}, ['Name', 'Connection', 'Status', 'Last health check', 'Client secret', 'Actions']
      .map((label) => h('th', { scope: 'col', text: label })))),
    body);
}

/** The type's label and its non-default choices (e.g. a cloud other than the first). */
function typeLine(p, type) {
  const parts = [type ? type.label : p.provider_type];
  for (const f of (type ? type.fields : []).filter((f) => f.options && f.options.length)) {
    const option = f.options.find((o) => o.value === p[f.name]);
    if (option && option !== f.options[0]) parts.push(option.label);
  }
  return parts.join(' · ');
}

/** The provider's first connection field (where it points), e.g. its workspace. */
function connectionCell(p, type) {
  const first = type && type.fields.find((f) => f.input === 'text');
  if (!first) return h('td', { class: 'muted', text: '—' });
  return h('td', {},
    h('div', { class: 'muted small', text: first.label }),
    h('code', { class: 'mono', testid: 'connection-summary', text: p[first.name] || '' }));
}

function providerRow(p, page) {
  const type = typeNamed(page.types, p.provider_type);
  const nameCell = h('th', { scope: 'row', class: 'name-cell' },
    h('span', { class: 'provider-name', testid: 'provider-name', text: p.name }),
    p.is_default ? h('span', { class: 'badge badge-default', testid: 'default-marker', text: 'Default' }) : null,
    p.sync_incidents && !p.is_default ? h('span', { class: 'badge badge-small badge-neutral', text: 'Syncs incidents' }) : null,
    h('div', { class: 'muted small', text: typeLine(p, type) }));
  return h('tr', {
    testid: 'provider-row',
    dataset: { providerId: p.id, providerName: p.name, isDefault: String(Boolean(p.is_default)) },
  },
  nameCell,
  connectionCell(p, type),
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
  h('td', {}, h('div', { class: 'row-actions' }, rowActions(p, type, page))));
}

function rowActions(p, type, page) {
  const button = (testid, text, label, classes = '') => h('button', {
    type: 'button', class: `btn btn-small ${classes}`.trim(), testid, text, 'aria-label': `${label} ${p.name}`,
  });
  const testBtn = button('row-test', 'Test', 'Test');
  const defaultBtn = p.is_default ? null : button('row-set-default', 'Set as default', 'Set as default');
  const syncBtn = button('row-sync', 'Sync incidents', 'Sync incidents of');
  const deleteBtn = button('row-delete', 'Delete', 'Delete', 'btn-danger');
  testBtn.addEventListener('click', () => withBusyButton(testBtn, 'Testing…', () => testProvider(p, type, page)));
  if (defaultBtn) defaultBtn.addEventListener('click', () => withBusyButton(defaultBtn, 'Setting…', () => setDefault(p, page)));
  syncBtn.addEventListener('click', () => withBusyButton(syncBtn, 'Syncing…', () => syncProvider(p, page)));
  deleteBtn.addEventListener('click', () => deleteProvider(p, deleteBtn, page));
  const editLink = h('a', {
    href: `#/admin/providers/${encodeURIComponent(p.id)}/edit`,
    class: 'btn btn-small',
    testid: 'row-edit',
    'aria-label': `Edit / rotate secret of ${p.name}`,
    text: 'Edit / rotate secret',
  });
  return [testBtn, defaultBtn, editLink, syncBtn, deleteBtn];
}

async function testProvider(p, type, { seq, status, resultHolder, reload }) {
  status.busy(`Testing the connection of “${p.name}”… this can take a few seconds.`);
  clear(resultHolder);
  try {
    const result = await api('POST', `${base(p)}/test`);
    if (!stillOn(seq)) return;
    const healthy = result.status === 'healthy';
    status[healthy ? 'ok' : 'error'](`Connection test of “${p.name}” ${healthy ? 'passed' : 'failed'}.`);
    resultHolder.append(h('h2', { text: `Test result: ${p.name}` }),
      renderTestResult(result, type, 'row-test-result', `Test result for ${p.name}`));
    await reload(true);
  } catch (e) {
    if (stillOn(seq)) status.error(`Could not test “${p.name}”: ${describeError(e)}`);
  }
}

async function setDefault(p, { seq, status, reload }) {
  if (p.status === 'error') {
    const confirmed = await confirmAction({
      title: `Make “${p.name}” the default?`,
      body: [h('p', { class: 'notice notice-warn', testid: 'confirm-failing-default' },
        `“${p.name}” failed its last connection check. As the default, every query without a chosen provider and every new investigation would use it.`)],
      ok: 'Set as default anyway',
    });
    if (!confirmed) return;
  }
  status.busy(`Setting “${p.name}” as the default provider…`);
  try {
    const result = await api('PUT', `${base(p)}/default`);
    if (!stillOn(seq)) return;
    status.ok((result && result.message) || `“${p.name}” is now the default provider.`);
    await reload(true);
  } catch (e) {
    if (stillOn(seq)) status.error(`Could not set “${p.name}” as default: ${describeError(e)}`);
  }
}

/** Follows a sync run until it has finished (a run already under way counts too). */
async function waitForSync(path, before, seq) {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    await sleep(700);
    if (!stillOn(seq)) return null;
    const now = await api('GET', path);
    const moved = !before
      || now.last_started_at !== before.last_started_at
      || now.last_finished_at !== before.last_finished_at;
    if (now.state === 'idle' && moved && now.last_finished_at) return now;
  }
  return null;
}

async function syncProvider(p, { seq, status }) {
  const path = `${base(p)}/sync`;
  status.busy(`Starting an incident sync of “${p.name}”…`);
  try {
    const before = await api('GET', path).catch(() => null);
    const started = await api('POST', path);
    if (!stillOn(seq)) return;
    status.busy(`${(started && started.message) || 'Incident sync started'}; waiting for it to finish…`);
    const last = await waitForSync(path, before, seq);
    if (!stillOn(seq)) return;
    if (!last) {
      status.info(`The incident sync of “${p.name}” is still running; new incidents appear under Incidents as it goes.`);
    } else if (last.last_error && last.last_success_at !== last.last_finished_at) {
      status.error(`The incident sync of “${p.name}” failed: ${last.last_error.message || last.last_error.code}`);
    } else {
      // The counts are this run's: what it read, what was new, what changed.
      const skipped = last.skipped ? `, ${plural(last.skipped, 'unreadable record', 'unreadable records')} skipped` : '';
      status.ok(`Incident sync of “${p.name}” finished: this run read ${plural(last.fetched || 0, 'incident', 'incidents')}, `
        + `${last.created || 0} new, ${last.updated || 0} updated${skipped}.`);
    }
  } catch (e) {
    if (stillOn(seq)) status.error(`Could not sync “${p.name}”: ${describeError(e)}`);
  }
}

async function deleteProvider(p, button, { seq, status, reload }) {
  if (!(await confirmDelete(p))) {
    button.focus();
    return;
  }
  status.busy(`Deleting “${p.name}”…`);
  try {
    const result = await api('DELETE', base(p));
    if (!stillOn(seq)) return;
    let message = `Deleted “${p.name}”.`;
    if (p.is_default) message += ' It was the default provider: no provider is default now, so set a new default.';
    status.ok(message);
    if (result && result.message) status.el.dataset.serverMessage = result.message;
    await reload(true);
    const heading = $('#main h1');
    if (heading) heading.focus();
  } catch (e) {
    if (stillOn(seq)) status.error(`Could not delete “${p.name}”: ${describeError(e)}`);
  }
}

// The expiry warning is long (it says what to do): it gets its own full-width line.
/** The warning at the top of the page when any provider fails its checks or its sync is stale. */
function healthWarning(providers, health) {
  const problems = [];
  for (const p of providers) {
    const summary = health.get(p.id) && health.get(p.id).summary;
    if (p.status === 'error') {
      const failing = summary && summary.last_failure
        && (summary.last_failure.checks || []).find((c) => c.status === 'failed');
      problems.push(`“${p.name}” fails its connection check${failing && failing.hint ? `: ${failing.hint}` : '.'}`);
    }
    if (summary && summary.sync && summary.sync.status === 'stale') {
      problems.push(`“${p.name}”: incidents are not current — ${summary.sync.reason}`);
    }
  }
  if (!problems.length) return null;
  return h('div', { class: 'notice notice-error', role: 'alert', testid: 'providers-health-warning' },
    h('p', { class: 'alert-title', text: problems.length === 1 ? 'A provider needs attention' : `${problems.length} provider problems need attention` }),
    h('ul', {}, problems.map((text) => h('li', { text }))));
}

/** Percent with one decimal, or a dash without checks. */
function percent(share) {
  return typeof share === 'number' ? `${(share * 100).toFixed(share === 1 ? 0 : 1)}%` : '—';
}

/** A provider's health over time: hourly cells for 24 h, daily for 7 days, uptime, last failure. */
function healthRow(p, summary) {
  const cells = (buckets, unit) => h('span', { class: 'timeline', role: 'img', 'aria-label': `${unit} health of ${p.name}` },
    buckets.map((b) => {
      const state = b.error ? (b.healthy ? 'mixed' : 'bad') : (b.healthy ? 'ok' : 'none');
      const label = b.healthy || b.error
        ? `${formatTime(b.start)}: ${b.healthy} passed, ${b.error} failed` : `${formatTime(b.start)}: no checks`;
      return h('span', { class: `cell cell-${state}`, title: label, dataset: { state } });
    }));
  const failing = summary.last_failure
    && (summary.last_failure.checks || []).find((c) => c.status === 'failed');
  return h('tr', { class: 'note-row health-row', testid: 'health-row', dataset: { providerId: p.id } },
    h('td', { colspan: '6' },
      h('div', { class: 'health-line' },
        h('span', { class: 'muted small', text: '24 h' }), cells(summary.timeline_24h || [], 'Hourly'),
        h('span', { class: 'muted small', text: '7 days' }), cells(summary.timeline_7d || [], 'Daily'),
        h('span', { class: 'small', testid: 'uptime', text: `Uptime ${percent(summary.uptime_24h)} (24 h), ${percent(summary.uptime_7d)} (7 days)` }),
        summary.sync && summary.sync.status === 'stale'
          ? h('span', { class: 'small badge badge-warn', testid: 'sync-stale', text: `Incidents not current: ${summary.sync.reason}` }) : null,
        failing ? h('span', { class: 'small', testid: 'last-failure' },
          `Last failure ${formatTime(summary.last_failure.checked_at)}: ${failing.name}${failing.code ? ` (${failing.code})` : ''}${failing.hint ? ` — ${failing.hint}` : ''}`) : null)));
}

function noteRow(p) {
  return h('tr', { class: 'note-row', dataset: { providerId: p.id, providerName: p.name } },
    h('td', { colspan: '6' },
      h('p', { class: 'expiry-warning', testid: 'expiry-warning', dataset: { providerName: p.name } },
        h('strong', { text: `${p.name}: ` }), p.secret_expiry_warning)));
}

/** Asks before deleting; resolves true when the admin confirmed. */
function confirmDelete(provider) {
  const body = [h('p', { testid: 'confirm-message' },
    'The provider ', h('strong', { text: provider.name }),
    ' will no longer be available for queries or incident sync. Its stored secret is destroyed.')];
  if (provider.is_default) {
    body.push(h('p', { class: 'notice notice-warn', testid: 'confirm-default-note' },
      `“${provider.name}” is the default provider. After deleting it no provider is the default until you set a new one; queries without a chosen provider fail until then.`));
  }
  return confirmAction({ title: `Delete “${provider.name}”?`, body, ok: `Delete ${provider.name}` });
}
