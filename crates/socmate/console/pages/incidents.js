// Incidents: filters, search and sort in the address, keyset paging, newest update first.

import { api, describeError, providerNames } from '/console/api.js';
import { append, clear, h } from '/console/dom.js';
import { currentPage, currentQuery, isAdmin, showPage, stillOn } from '/console/shell.js';
import { announce, plural, statusArea, timeEl } from '/console/ui.js';

// Statuses as SIEMs name them; a SIEM's own values still show, as sent.
export const INCIDENT_STATUSES = [
  ['', 'Any status'], ['new', 'New'], ['active', 'Active'], ['inProgress', 'In progress'],
  ['resolved', 'Resolved'], ['closed', 'Closed'], ['redirected', 'Redirected (merged)'],
];
const SEVERITIES = [
  ['', 'Any severity'], ['high', 'High'], ['medium', 'Medium'], ['low', 'Low'],
  ['informational', 'Informational'], ['unknown', 'Unknown'],
];
const SORTS = [['', 'Last updated'], ['created', 'Created'], ['severity', 'Severity']];
const DEFAULT_PAGE_SIZE = 25;
// Every filter the address and the API share, in form order.
const FILTER_NAMES = ['search', 'status', 'severity', 'source', 'provider_id', 'owner', 'sort'];

/** Where the list is (filters and page), kept across visits so "back" returns to it. */
export const incidentsView = { cursors: [null], page: 0, key: '', listHash: '#/incidents', products: new Map() };

export function severityBadge(severity) {
  const s = severity || 'unknown';
  return h('span', { class: `badge sev sev-${s.replace(/[^a-zA-Z]/g, '')}`, testid: 'severity', text: s });
}

/** The products an incident's alerts came from, as its connector names them. */
export function productText(incident) {
  const labels = incident.source_labels || incident.sources || [];
  return labels.join(', ');
}

export function humanStatus(value) {
  const match = INCIDENT_STATUSES.find(([v]) => v === value);
  return match ? match[1] : (value || '—');
}

/** Reads the filters from the address (`#/incidents?status=active&severity=high`). */
function readFilters(view) {
  const query = currentQuery();
  for (const name of FILTER_NAMES) view[name] = query.get(name) || '';
  const asked = Number.parseInt(query.get('limit') || '', 10);
  view.pageSize = asked >= 1 && asked <= 200 ? asked : DEFAULT_PAGE_SIZE;
  const key = filterKey(view);
  if (key !== view.key) Object.assign(view, { key, cursors: [null], page: 0 });
  view.listHash = window.location.hash || '#/incidents';
}

/** The product filter offers the products seen in the incidents listed so far. */
function productOptions(view) {
  return [['', 'Any product'], ...[...view.products].sort((a, b) => a[1].localeCompare(b[1]))];
}

function rememberProducts(view, incidents) {
  for (const incident of incidents) {
    (incident.sources || []).forEach((code, i) => {
      view.products.set(code, (incident.source_labels || [])[i] || code);
    });
  }
}

function filterKey(view) {
  return [...FILTER_NAMES.map((name) => view[name]), view.pageSize].join('|');
}

/** Whether any filter (not the sort) narrows the list. */
function isFiltered(view) {
  return FILTER_NAMES.some((name) => name !== 'sort' && view[name]);
}

function select(id, options, value) {
  const el = h('select', { id, testid: id });
  refreshOptions(el, options, value);
  return el;
}

function refreshOptions(el, options, value) {
  const known = options.some(([v]) => v === value);
  // A filter from the address for a product not seen yet still shows as chosen.
  const all = known || !value ? options : [...options, [value, value]];
  el.replaceChildren(...all.map(([v, l]) => h('option', { value: v, text: l })));
  el.value = value;
}

function incidentRow(incident) {
  return h('tr', { testid: 'incident-row', dataset: { incidentId: incident.id } },
    h('td', {}, h('a', {
      href: `#/incidents/${encodeURIComponent(incident.id)}`,
      testid: 'incident-link',
      text: incident.display_name || `Incident ${incident.external_id}`,
    }), h('div', { class: 'muted small', text: `#${incident.external_id}` })),
    h('td', {}, severityBadge(incident.severity)),
    h('td', { testid: 'incident-status', text: humanStatus(incident.status) }),
    h('td', { testid: 'incident-origin' },
      h('div', { text: productText(incident) || '—' }),
      incident.origin ? h('div', { class: 'muted small', text: incident.origin }) : null,
      incident.tenant_id ? h('div', { class: 'muted small', text: `Tenant ${incident.tenant_id}` }) : null),
    h('td', { testid: 'incident-owner', text: incident.assigned_to || '—' }),
    h('td', {}, timeEl(incident.last_update_at, '—')));
}

function incidentsTable(incidents, view) {
  if (!incidents.length) {
    const filtered = isFiltered(view);
    return h('div', { class: 'empty', testid: 'incidents-empty' },
      h('p', { text: filtered ? 'No incident matches these filters.' : 'No incidents yet.' }),
      isAdmin() && !filtered
        ? h('p', {}, 'Incidents appear after a sync of the default provider. Admins can start one from ', h('a', { href: '#/admin/providers', text: 'SIEM Providers' }), '.')
        : null);
  }
  return h('table', { class: 'data', testid: 'incidents-table' },
    h('caption', { class: 'sr-only', text: 'Incidents' }),
    h('thead', {}, h('tr', {}, ['Incident', 'Severity', 'Status', 'Source', 'Assigned to', 'Last updated']
      .map((label) => h('th', { scope: 'col', text: label })))),
    h('tbody', {}, incidents.map(incidentRow)));
}

export async function incidentsPage() {
  const seq = currentPage();
  const view = incidentsView;
  readFilters(view);
  const status = statusArea('incidents-status');
  const providers = await providerNames().catch(() => []);
  if (!stillOn(seq)) return;
  const text = (id, value, attrs) => h('input', { id, testid: id, value, maxlength: '200', autocomplete: 'off', ...attrs });
  const controls = {
    search: text('filter-search', view.search, { type: 'search', placeholder: 'Words in the title' }),
    status: select('filter-status', INCIDENT_STATUSES, view.status),
    severity: select('filter-severity', SEVERITIES, view.severity),
    source: select('filter-source', productOptions(view), view.source),
    provider_id: select('filter-provider', [['', 'Any provider'], ...providers.map((p) => [p.id, p.name])], view.provider_id),
    owner: text('filter-owner', view.owner, { type: 'email', placeholder: 'name@example.com' }),
    sort: select('filter-sort', SORTS, view.sort),
  };
  const labels = { search: 'Title contains', status: 'Status', severity: 'Severity', source: 'Product',
    provider_id: 'Provider', owner: 'Assigned to', sort: 'Sort by' };
  const filters = h('form', { class: 'filters', testid: 'incident-filters', 'aria-label': 'Filter incidents' },
    FILTER_NAMES.map((name) => h('div', { class: 'field inline' },
      h('label', { for: controls[name].id, text: labels[name] }), controls[name])),
    h('button', { type: 'submit', class: 'btn', testid: 'apply-filters', text: 'Apply filters' }),
    h('button', { type: 'button', class: 'btn btn-quiet', testid: 'clear-filters', text: 'Clear filters' }));
  const chosen = () => Object.fromEntries(FILTER_NAMES.map((name) => [name, controls[name].value.trim()]));
  const ui = {
    seq, status, sourceSelect: controls.source, table: h('div', { class: 'table-wrap' }),
    prev: h('button', { type: 'button', class: 'btn', testid: 'prev-page', text: '← Previous page' }),
    next: h('button', { type: 'button', class: 'btn', testid: 'next-page', text: 'Next page →' }),
    info: h('span', { class: 'muted', testid: 'page-info' }),
    freshness: h('div', { testid: 'data-freshness' }),
  };
  showPage('Incidents',
    h('p', { class: 'lead', text: 'Incidents synced from your SIEM providers, most recently updated first. Each says which products raised it and where it was read from.' }),
    ui.freshness, filters, status.el, ui.table,
    h('nav', { class: 'pager', 'aria-label': 'Incident pages' }, ui.prev, ui.info, ui.next));

  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    applyFilters(view, chosen());
    loadPage(view, ui);
  });
  filters.querySelector('[data-testid="clear-filters"]').addEventListener('click', () => {
    for (const control of Object.values(controls)) control.value = '';
    applyFilters(view, chosen());
    loadPage(view, ui);
  });
  ui.next.addEventListener('click', () => {
    if (!view.cursors[view.page + 1]) return;
    view.page += 1;
    loadPage(view, ui);
  });
  ui.prev.addEventListener('click', () => {
    if (view.page === 0) return;
    view.page -= 1;
    loadPage(view, ui);
  });
  await loadPage(view, ui);
}

/** When the list was last brought up to date, and a warning when the last sync run failed. */
function freshnessNote(synced) {
  if (!synced) return null;
  const asOf = synced.as_of
    ? h('p', { class: 'muted small', testid: 'data-as-of' }, 'Data as of ', timeEl(synced.as_of), ' (last successful sync).')
    : h('p', { class: 'muted small', testid: 'data-as-of', text: 'No sync has completed yet: the list may be incomplete.' });
  const failed = synced.last_run_failed
    ? h('p', { class: 'notice notice-warn', role: 'status', testid: 'sync-failed-warning',
      text: 'The last incident sync failed: newer changes in the SIEM may be missing here. An admin sees why under Admin › SIEM Providers.' })
    : null;
  return [failed, asOf];
}

function applyFilters(view, filters) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(filters)) if (value) params.set(name, value);
  if (view.pageSize !== DEFAULT_PAGE_SIZE) params.set('limit', String(view.pageSize));
  Object.assign(view, filters, { cursors: [null], page: 0 });
  view.key = filterKey(view);
  const text = params.toString();
  view.listHash = `#/incidents${text ? `?${text}` : ''}`;
  // replaceState: no hashchange, so the page is not rebuilt and focus stays on the form.
  history.replaceState(null, '', view.listHash);
}

async function loadPage(view, ui) {
  ui.status.busy('Loading incidents…');
  ui.table.setAttribute('aria-busy', 'true');
  const params = new URLSearchParams({ limit: String(view.pageSize) });
  for (const name of FILTER_NAMES) if (view[name]) params.set(name, view[name]);
  const cursor = view.cursors[view.page];
  if (cursor) params.set('cursor', cursor);
  try {
    const data = await api('GET', `/api/incidents?${params}`);
    if (!stillOn(ui.seq)) return;
    const incidents = data.incidents || [];
    view.cursors[view.page + 1] = data.next_cursor || null;
    rememberProducts(view, incidents);
    refreshOptions(ui.sourceSelect, productOptions(view), view.source);
    clear(ui.table).append(incidentsTable(incidents, view));
    append(clear(ui.freshness), [freshnessNote(data.synced)]);
    const total = typeof data.total === 'number' ? data.total : incidents.length;
    // The server stops counting at a cap and says so: "1,000+", never a made-up exact figure.
    const counted = data.total_capped ? `${total.toLocaleString('en-US')}+ incidents` : plural(total, 'incident', 'incidents');
    const first = view.page * view.pageSize + (incidents.length ? 1 : 0);
    const last = view.page * view.pageSize + incidents.length;
    ui.info.textContent = incidents.length ? `${first}–${last} of ${counted}` : counted;
    ui.prev.disabled = view.page === 0;
    ui.next.disabled = !data.next_cursor;
    ui.status.clear();
    ui.status.el.dataset.total = String(total);
    announce(`${counted} found.`);
  } catch (e) {
    if (stillOn(ui.seq)) ui.status.error(`Could not load incidents: ${describeError(e)}`);
  } finally {
    ui.table.removeAttribute('aria-busy');
  }
}
