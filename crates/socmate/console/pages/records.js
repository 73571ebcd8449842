// Pages for what the API keeps: the admin audit log, one's query history, and investigations
// with their linked incidents and queries.
// Each lists newest first and loads further pages on request (the API's `next_cursor`).

import { api, describeError, providerNames } from '/console/api.js';
import { clear, h } from '/console/dom.js';
import { currentPage, currentQuery, showPage, stillOn } from '/console/shell.js';
import { formatTime, statusArea, timeEl, withBusyButton } from '/console/ui.js';
import { openQueryIn, openQueryWith } from '/console/pages/query.js';

/**
 * A table filled page by page from `path` (items under `key`), with a "Load more" button while
 * the API says more follow.
 */
function pagedTable({ seq, path, key, columns, row, testid, empty }) {
  const status = statusArea(`${testid}-status`);
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'btn', testid: `${testid}-more`, text: 'Load more', hidden: true });
  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'data', testid },
    h('thead', {}, h('tr', {}, columns.map((text) => h('th', { scope: 'col', text })))), body));
  let cursor = null;
  let count = 0;
  const load = async () => {
    const separator = path.includes('?') ? '&' : '?';
    const data = await api('GET', cursor ? `${path}${separator}cursor=${encodeURIComponent(cursor)}` : path);
    if (!stillOn(seq)) return;
    const items = (data && data[key]) || [];
    count += items.length;
    body.append(...items.map(row));
    cursor = data && data.next_cursor;
    more.hidden = !cursor;
    if (!count) status.ok(empty);
    else status.clear();
  };
  more.addEventListener('click', () => withBusyButton(more, 'Loading…', () => load().catch((e) => status.error(describeError(e)))));
  load().catch((e) => { if (stillOn(seq)) status.error(`Could not load: ${describeError(e)}`); });
  return h('div', {}, status.el, table, h('p', {}, more));
}

export function auditLogPage() {
  const seq = currentPage();
  const filters = currentQuery();
  const form = h('form', { class: 'toolbar', testid: 'audit-filters' },
    ...['actor', 'action', 'target_id'].map((name) => h('label', { class: 'field-inline' },
      h('span', { text: { actor: 'Actor', action: 'Action', target_id: 'Target id' }[name] }),
      h('input', { type: 'text', name, value: filters.get(name) || '', placeholder: name === 'action' ? 'provider.update' : '' }))),
    h('button', { type: 'submit', class: 'btn', testid: 'audit-apply', text: 'Apply' }),
    h('a', { href: '#/admin/audit', class: 'btn btn-quiet', testid: 'audit-clear', text: 'Clear filters' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const query = new URLSearchParams([...new FormData(form)].filter(([, v]) => String(v).trim()));
    window.location.hash = `#/admin/audit${query.size ? `?${query}` : ''}`;
  });
  const query = new URLSearchParams([...filters].filter(([k]) => ['actor', 'action', 'target_id'].includes(k)));
  showPage('Audit log',
    h('p', { class: 'lead', text: 'Every admin action, refused request and sign-in, newest first. Repeated refusals within ten minutes share a row with their count.' }),
    form,
    pagedTable({
      seq,
      path: `/api/admin/audit-log${query.size ? `?${query}` : ''}`,
      key: 'entries',
      testid: 'audit-table',
      empty: 'No audit entries match.',
      columns: ['When', 'Actor', 'Action', 'Target', 'Outcome', 'Detail', 'From'],
      row: (e) => h('tr', { testid: 'audit-row' },
        h('td', {}, timeEl(e.at), e.count > 1 ? h('div', { class: 'muted small', testid: 'audit-count', text: `×${e.count}, last ${formatTime(e.last_at) || '—'}` }) : null),
        h('td', {}, e.actor, h('div', { class: 'muted small', text: e.actor_role })),
        h('td', {}, h('code', { text: e.action })),
        h('td', {}, e.target_id ? h('code', { class: 'mono', text: e.target_id }) : '—'),
        h('td', { text: e.outcome }),
        h('td', { class: 'small', text: e.detail || '—' }),
        h('td', { class: 'small', text: e.client_addr || '—' })),
    }));
}

async function providerLabel() {
  const providers = await providerNames().catch(() => []);
  const names = new Map(providers.map((p) => [p.id, p.name]));
  return (id) => names.get(id) || id;
}

export async function historyPage() {
  const seq = currentPage();
  const name = await providerLabel();
  if (!stillOn(seq)) return;
  showPage('Query history',
    h('p', { class: 'lead', text: 'The queries you ran (admins: everyone’s), newest first. Run one again in a click.' }),
    pagedTable({
      seq,
      path: '/api/siem/queries',
      key: 'queries',
      testid: 'history-table',
      empty: 'No queries yet.',
      columns: ['When', 'Query', 'Provider', 'Outcome', 'Rows', ''],
      row: (q) => h('tr', { testid: 'history-row' },
        h('td', {}, timeEl(q.created_at), h('div', { class: 'muted small', text: q.actor })),
        h('td', {}, h('pre', { class: 'pre small', testid: 'history-query', text: q.query })),
        h('td', { text: name(q.provider_id) }),
        h('td', { text: q.error_code ? `${q.status} (${q.error_code})` : q.status }),
        h('td', { class: 'num', text: String(q.row_count) }),
        h('td', {}, h('button', {
          type: 'button', class: 'btn btn-small', testid: 'history-rerun', text: 'Run again',
          'aria-label': `Run again: ${q.query.length > 60 ? `${q.query.slice(0, 60)}…` : q.query}`,
          onclick: () => openQueryWith(q.query, q.provider_id),
        }))),
    }));
}

export async function investigationsPage() {
  const seq = currentPage();
  const name = await providerLabel();
  if (!stillOn(seq)) return;
  const status = statusArea('investigation-create-status');
  const title = h('input', { type: 'text', id: 'investigation-title', required: true, maxlength: '200' });
  const description = h('textarea', { id: 'investigation-description', rows: '3', maxlength: '10000' });
  const form = h('form', { class: 'form', testid: 'investigation-form' },
    h('label', { for: 'investigation-title', text: 'Title' }), title,
    h('label', { for: 'investigation-description', text: 'Description (optional)' }), description,
    h('p', {}, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'investigation-create', text: 'Open investigation' })),
    status.el);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const created = await api('POST', '/api/investigations', { title: title.value, description: description.value || null });
      window.location.hash = `#/investigations/${encodeURIComponent(created.id)}`;
    } catch (e) {
      status.error(`Could not open the investigation: ${describeError(e)}`);
    }
  });
  showPage('Investigations',
    h('p', { class: 'lead', text: 'An investigation pins the default provider at the time it is opened; its queries run there.' }),
    h('details', { testid: 'new-investigation' }, h('summary', { text: 'New investigation' }), form),
    pagedTable({
      seq,
      path: '/api/investigations',
      key: 'investigations',
      testid: 'investigations-table',
      empty: 'No investigations yet.',
      columns: ['Title', 'Provider', 'Opened by', 'Opened'],
      row: (i) => h('tr', { testid: 'investigation-row' },
        h('td', {}, h('a', { href: `#/investigations/${encodeURIComponent(i.id)}`, testid: 'investigation-link', text: i.title })),
        h('td', { text: name(i.provider_id) }),
        h('td', { text: i.created_by }),
        h('td', {}, timeEl(i.created_at))),
    }));
}

/** The incidents linked to an investigation, each to open or unlink. */
function linkedIncidents(seq, investigation) {
  const status = statusArea('linked-status');
  const list = h('ul', { class: 'linked-list', testid: 'linked-incidents' });
  const load = async () => {
    const data = await api('GET', `/api/investigations/${encodeURIComponent(investigation.id)}/incidents?limit=100`);
    if (!stillOn(seq)) return;
    const items = (data && data.incidents) || [];
    clear(list).append(...items.map((link) => {
      const unlink = h('button', { type: 'button', class: 'btn btn-small btn-quiet', testid: 'unlink-incident', text: 'Unlink', 'aria-label': `Unlink ${link.title || link.incident_id}` });
      unlink.addEventListener('click', () => withBusyButton(unlink, 'Unlinking…', async () => {
        try {
          await api('DELETE', `/api/investigations/${encodeURIComponent(investigation.id)}/incidents/${encodeURIComponent(link.incident_id)}`);
          await load();
          status.ok(`Unlinked “${link.title || link.incident_id}”.`);
          document.querySelector('#linked-heading')?.focus();
        } catch (e) {
          status.error(`Could not unlink: ${describeError(e)}`);
        }
      }));
      return h('li', { testid: 'linked-incident' },
        link.stored
          ? h('a', { href: `#/incidents/${encodeURIComponent(link.incident_id)}`, testid: 'linked-incident-link', text: link.title || link.incident_id })
          : h('span', { class: 'muted', text: `${link.incident_id} (no longer stored)` }),
        link.severity ? h('span', { class: 'muted small', text: ` · ${link.severity}` }) : null,
        link.status ? h('span', { class: 'muted small', text: ` · ${link.status}` }) : null,
        h('span', { class: 'muted small', text: ` · linked by ${link.linked_by} ` }), timeEl(link.linked_at), ' ', unlink);
    }));
    if (!items.length) status.info('No incidents linked yet: link one from its incident page.');
    if (data && data.next_cursor) list.append(h('li', { class: 'muted small', text: 'The 100 most recently linked are shown.' }));
  };
  load().catch((e) => { if (stillOn(seq)) status.error(`Could not load the linked incidents: ${describeError(e)}`); });
  return [h('h2', { id: 'linked-heading', tabindex: '-1', text: 'Linked incidents' }), status.el, list];
}

export async function investigationPage(id) {
  const seq = currentPage();
  showPage('Investigation', h('p', { class: 'muted', role: 'status', text: 'Loading…' }));
  try {
    const [investigation, name] = await Promise.all([
      api('GET', `/api/investigations/${encodeURIComponent(id)}`), providerLabel(),
    ]);
    if (!stillOn(seq)) return;
    const run = h('button', { type: 'button', class: 'btn btn-primary', testid: 'investigation-run', text: 'Run a query in this investigation',
      onclick: () => openQueryIn(investigation) });
    showPage(investigation.title,
      h('p', { class: 'breadcrumb' }, h('a', { href: '#/investigations', text: '← Investigations' })),
      investigation.description ? h('p', { class: 'lead pre', testid: 'investigation-description', text: investigation.description }) : null,
      h('dl', { class: 'details', testid: 'investigation-details' },
        h('dt', { text: 'Pinned provider' }), h('dd', { testid: 'investigation-provider', text: name(investigation.provider_id) }),
        h('dt', { text: 'Opened by' }), h('dd', { text: investigation.created_by }),
        h('dt', { text: 'Opened' }), h('dd', {}, timeEl(investigation.created_at))),
      h('div', { class: 'toolbar' }, run),
      linkedIncidents(seq, investigation),
      h('h2', { text: 'Queries run in it' }),
      pagedTable({
        seq,
        path: `/api/investigations/${encodeURIComponent(investigation.id)}/queries`,
        key: 'queries',
        testid: 'investigation-queries',
        empty: 'No queries in this investigation yet.',
        columns: ['When', 'Query', 'Outcome', 'Rows', ''],
        row: (q) => h('tr', { testid: 'investigation-query' },
          h('td', {}, timeEl(q.created_at), h('div', { class: 'muted small', text: q.actor })),
          h('td', {}, h('pre', { class: 'pre small', text: q.query })),
          h('td', { text: q.error_code ? `${q.status} (${q.error_code})` : q.status }),
          h('td', { class: 'num', text: String(q.row_count) }),
          h('td', {}, h('button', {
            type: 'button', class: 'btn btn-small', testid: 'investigation-rerun', text: 'Run again',
            'aria-label': `Run again: ${q.query.length > 60 ? `${q.query.slice(0, 60)}…` : q.query}`,
            onclick: () => openQueryIn(investigation, q.query),
          }))),
      }));
  } catch (e) {
    if (stillOn(seq)) clear(document.querySelector('#main')).append(h('h1', { text: 'Investigation' }),
      h('p', { class: 'notice notice-error', role: 'alert', testid: 'investigation-error', text: describeError(e) }));
  }
}
