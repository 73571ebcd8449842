// Query: run a query on the default provider or a chosen one, results as tables. The query
// language, its example and hint come from the chosen provider's type. Saved queries (one's own
// and those others share) load into the form; inside an investigation, queries run on the
// provider it pinned and are recorded with it.

import { ApiError, ExactNumber, api, describeError, providerNames, providerTypes } from '/console/api.js';
import { clear, h } from '/console/dom.js';
import { currentPage, isAdmin, showPage, stillOn } from '/console/shell.js';
import { announce, confirmAction, plural, statusArea, withBusyButton } from '/console/ui.js';
import { typeNamed } from '/console/pages/provider-parts.js';

const TIMESPANS = [
  ['PT1H', 'Last hour'], ['P1D', 'Last 24 hours'], ['P7D', 'Last 7 days'], ['P30D', 'Last 30 days'],
  ['custom', 'Custom range (UTC)…'],
];
const MAX_RENDERED_ROWS = 1000;
/** What the analyst last ran, kept across visits; `investigation` while working in one. */
const queryView = { query: null, timespan: 'P1D', provider: '', from: '', to: '', investigation: null };

function cellText(value) {
  if (value === null || value === undefined) return null;
  if (value instanceof ExactNumber) return value.source;
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** `2026-03-02T08:00:01.6354373Z` → `2026-03-02 08:00:01.635 UTC` (the raw value on hover). */
function readableTime(raw) {
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,3})?\d*Z$/.exec(raw);
  return match ? `${match[1]} ${match[2]}${match[3] || ''} UTC` : raw;
}

function cell(value, type) {
  const text = cellText(value);
  if (text === null) return h('td', { class: 'null', text: 'null' });
  if (type === 'datetime' && typeof value === 'string') {
    return h('td', {}, h('time', { datetime: value, title: value, text: readableTime(value) }));
  }
  if (value !== null && typeof value === 'object' && !(value instanceof ExactNumber)) {
    // A dynamic value: one line, unfolding to its indented JSON.
    return h('td', {}, h('details', { class: 'dynamic' },
      h('summary', { text: text.length > 80 ? `${text.slice(0, 80)}…` : text }),
      h('pre', { class: 'pre small', text: JSON.stringify(value, null, 2) })));
  }
  return h('td', { class: /^(long|int|real|decimal)$/.test(type) ? 'num' : '', text });
}

/** Orders two cells of `type`: numbers by value (longs exactly, through BigInt), others as text. */
function compareCells(a, b, type) {
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : -1;
  if (b === null || b === undefined) return 1;
  if (/^(long|int)$/.test(type)) {
    const big = (v) => { try { return BigInt(cellText(v)); } catch { return 0n; } };
    const [x, y] = [big(a), big(b)];
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (/^(real|decimal)$/.test(type)) return Number(cellText(a)) - Number(cellText(b));
  return cellText(a).localeCompare(cellText(b));
}

/** A row as tab-separated text, values exactly as shown. */
const rowText = (row) => row.map((v) => cellText(v) ?? '').join('\t');

function renderTable(table, index) {
  const columns = Array.isArray(table.columns) ? table.columns : [];
  const rows = Array.isArray(table.rows) ? table.rows : [];
  const captionId = `result-caption-${index}`;
  const view = { order: rows, sortBy: null, descending: false, page: 0 };
  const body = h('tbody');
  const pageInfo = h('span', { class: 'muted small', testid: 'result-page-info', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'btn btn-small', testid: 'result-prev', text: '← Previous' });
  const next = h('button', { type: 'button', class: 'btn btn-small', testid: 'result-next', text: 'Next →' });
  const headers = columns.map((c, i) => {
    const button = h('button', { type: 'button', class: 'sort', testid: 'sort-column', title: `Sort by ${c.name}` }, c.name);
    button.addEventListener('click', () => {
      view.descending = view.sortBy === i ? !view.descending : false;
      view.sortBy = i;
      const sorted = [...rows].sort((a, b) => compareCells(a[i], b[i], c.type));
      view.order = view.descending ? sorted.reverse() : sorted;
      view.page = 0;
      headers.forEach((th, j) => th.setAttribute('aria-sort', j === i ? (view.descending ? 'descending' : 'ascending') : 'none'));
      draw();
    });
    return h('th', { scope: 'col', 'aria-sort': 'none' }, button, h('span', { class: 'col-type', text: c.type }));
  });
  const draw = () => {
    const first = view.page * MAX_RENDERED_ROWS;
    const shown = view.order.slice(first, first + MAX_RENDERED_ROWS);
    clear(body).append(...shown.map((row, k) => {
      const copy = h('button', { type: 'button', class: 'btn btn-small btn-quiet', testid: 'copy-row', text: 'Copy', 'aria-label': 'Copy this row' });
      copy.addEventListener('click', async () => {
        await navigator.clipboard.writeText(rowText(row)).catch(() => {});
        copy.textContent = 'Copied';
      });
      return h('tr', { dataset: { row: String(first + k) } }, columns.map((c, i) => cell(row[i], c.type)), h('td', {}, copy));
    }));
    const many = rows.length > MAX_RENDERED_ROWS;
    pageInfo.textContent = many
      ? `Rows ${(first + 1).toLocaleString('en-US')}–${(first + shown.length).toLocaleString('en-US')} of ${rows.length.toLocaleString('en-US')}`
      : '';
    prev.hidden = !many;
    next.hidden = !many;
    prev.disabled = view.page === 0;
    next.disabled = first + MAX_RENDERED_ROWS >= rows.length;
  };
  // One listener for every cell: a double-click copies that value exactly as the API sent it.
  body.addEventListener('dblclick', async (event) => {
    const td = event.target.closest('td');
    const row = view.order[Number(td?.parentElement?.dataset.row)];
    if (!row || td.cellIndex >= columns.length) return;
    await navigator.clipboard.writeText(cellText(row[td.cellIndex]) ?? '').catch(() => {});
    td.classList.add('copied');
    announce(`Copied the ${columns[td.cellIndex].name} value.`);
  });
  prev.addEventListener('click', () => { view.page -= 1; draw(); });
  next.addEventListener('click', () => { view.page += 1; draw(); });
  draw();
  return h('section', { class: 'result-table', testid: 'result-table', dataset: { table: table.name || '' } },
    h('h3', { id: captionId },
      table.name || `Table ${index + 1}`,
      h('span', { class: 'muted', text: ` · ${plural(rows.length, 'row', 'rows')}` })),
    h('div', { class: 'toolbar' }, prev, next, pageInfo,
      h('span', { class: 'muted small', text: 'Double-click a cell to copy its value; Copy copies the row.' })),
    h('div', { class: 'table-wrap scroll' },
      h('table', { class: 'data compact', 'aria-labelledby': captionId },
        h('thead', {}, h('tr', {}, headers, h('th', { scope: 'col' }, h('span', { class: 'sr-only', text: 'Copy' })))),
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

function queryForm(ui) {
  ui.textarea.value = queryView.query || '';
  ui.timespan.value = queryView.timespan;
  ui.from.value = queryView.from;
  ui.to.value = queryView.to;
  const custom = h('span', { class: 'custom-range', testid: 'custom-range', hidden: ui.timespan.value !== 'custom' },
    h('div', { class: 'field inline' }, h('label', { for: 'query-from', text: 'From (UTC)' }), ui.from),
    h('div', { class: 'field inline' }, h('label', { for: 'query-to', text: 'To (UTC)' }), ui.to));
  ui.timespan.addEventListener('change', () => { custom.hidden = ui.timespan.value !== 'custom'; });
  return h('form', { class: 'card query-form', testid: 'query-form', novalidate: true },
    h('div', { class: 'query-controls' },
      h('div', { class: 'field inline' }, h('label', { for: 'query-provider', text: 'Provider' }), ui.provider),
      h('div', { class: 'field inline' }, h('label', { for: 'query-timespan', text: 'Time range' }), ui.timespan),
      custom),
    h('div', { class: 'field' }, ui.label, ui.textarea, ui.hint),
    h('div', { class: 'actions' }, ui.run, ui.cancel, ui.save, ui.elapsed),
    ui.saveForm);
}

/** Opens the query page with `query` ready to run on `provider` (an id, or '' for the default). */
export function openQueryWith(query, provider = '') {
  Object.assign(queryView, { query, provider, investigation: null });
  window.location.hash = '#/query';
}

/** Opens the query page inside `investigation`: its queries run on the provider it pinned. */
export function openQueryIn(investigation, query = '') {
  const { id, title, provider_id: providerId } = investigation;
  Object.assign(queryView, { query, provider: providerId, investigation: { id, title, providerId } });
  window.location.hash = '#/query';
}

/** The banner saying which investigation the queries run in, with a way out of it. */
function investigationBanner(ui) {
  const current = queryView.investigation;
  if (!current) return null;
  const leave = h('button', { type: 'button', class: 'btn btn-small', testid: 'leave-investigation', text: 'Leave the investigation' });
  const banner = h('p', { class: 'notice notice-info', testid: 'query-investigation' },
    'Queries run in the investigation ',
    h('a', { href: `#/investigations/${encodeURIComponent(current.id)}`, text: `“${current.title}”` }),
    ', on the provider it pinned, and are listed there. ', leave);
  leave.addEventListener('click', () => {
    queryView.investigation = null;
    banner.remove();
    ui.provider.disabled = false;
    ui.provider.focus();
  });
  return banner;
}

/** The save form under the query: a name, and whether everyone may see it. */
function saveForm(ui) {
  const name = h('input', { type: 'text', id: 'saved-name', testid: 'saved-name', maxlength: '100', required: true, autocomplete: 'off' });
  const shared = h('input', { type: 'checkbox', id: 'saved-shared', testid: 'saved-shared' });
  const submit = h('button', { type: 'button', class: 'btn btn-primary btn-small', testid: 'saved-submit', text: 'Save' });
  const close = h('button', { type: 'button', class: 'btn btn-small', text: 'Cancel' });
  const el = h('div', { class: 'save-form', testid: 'save-form', hidden: true },
    h('div', { class: 'field inline' }, h('label', { for: 'saved-name', text: 'Name' }), name),
    h('div', { class: 'field-check' }, h('span', { class: 'check-row' }, shared, h('label', { for: 'saved-shared', text: 'Share with everyone' }))),
    submit, close);
  const open = () => {
    const loaded = ui.loaded && ui.loaded.mine ? ui.loaded : null;
    name.value = loaded ? loaded.name : '';
    shared.checked = loaded ? loaded.shared : false;
    el.hidden = false;
    name.focus();
  };
  close.addEventListener('click', () => { el.hidden = true; ui.save.focus(); });
  name.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') { event.preventDefault(); submit.click(); }
  });
  submit.addEventListener('click', () => withBusyButton(submit, 'Saving…', async () => {
    const timespan = requestedTimespan(ui);
    if (!timespan) return;
    if (!name.value.trim()) {
      ui.status.error('Name the query to save it.');
      name.focus();
      return;
    }
    const body = { name: name.value, query: ui.textarea.value, timespan, shared: shared.checked };
    // The query loaded from one's own saved query, under the same name: saving updates it.
    const replacing = ui.loaded && ui.loaded.mine && ui.loaded.name === name.value.trim() ? ui.loaded : null;
    try {
      ui.loaded = replacing
        ? await api('PUT', `/api/siem/saved-queries/${encodeURIComponent(replacing.id)}`, body)
        : await api('POST', '/api/siem/saved-queries', body);
      el.hidden = true;
      ui.status.ok(`${replacing ? 'Updated' : 'Saved'} “${ui.loaded.name}”${ui.loaded.shared ? ', shared with everyone' : ''}.`);
      await loadSaved(ui);
      ui.save.focus();
    } catch (e) {
      ui.status.error(`Could not save the query: ${describeError(e)}`);
      name.focus();
    }
  }));
  return { el, open };
}

/** Fills the form with a saved query: its text and its time range. */
function loadSavedQuery(ui, saved) {
  ui.loaded = saved;
  ui.textarea.value = saved.query;
  const interval = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(?:\.\d+)?Z\/(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(?:\.\d+)?Z$/.exec(saved.timespan);
  if (interval) {
    [ui.timespan.value, ui.from.value, ui.to.value] = ['custom', interval[1], interval[2]];
  } else {
    if (![...ui.timespan.options].some((o) => o.value === saved.timespan)) {
      ui.timespan.append(h('option', { value: saved.timespan, text: saved.timespan }));
    }
    ui.timespan.value = saved.timespan;
  }
  ui.timespan.dispatchEvent(new Event('change'));
  ui.status.info(`Loaded “${saved.name}”. Run it, or change it and save.`);
  ui.textarea.focus();
}

/** The caller's saved queries and the shared ones, each to load, the own ones to delete. */
async function loadSaved(ui) {
  const items = [];
  try {
    // Pages of 100 (the API's most): a user keeps up to 200, and others share theirs.
    let cursor = null;
    do {
      const page = await api('GET', `/api/siem/saved-queries?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      items.push(...((page && page.saved_queries) || []));
      cursor = page && page.next_cursor;
    } while (cursor && stillOn(ui.seq));
  } catch (e) {
    if (stillOn(ui.seq)) clear(ui.savedList).append(h('p', { class: 'muted', text: `Could not load the saved queries: ${describeError(e)}` }));
    return;
  }
  if (!stillOn(ui.seq)) return;
  clear(ui.savedList).append(items.length
    ? h('ul', { class: 'saved-list' }, items.map((saved) => savedItem(ui, saved)))
    : h('p', { class: 'muted', testid: 'saved-empty', text: 'No saved queries yet: write a query and choose Save.' }));
}

function savedItem(ui, saved) {
  const load = h('button', { type: 'button', class: 'btn btn-small', testid: 'saved-load', text: 'Load', 'aria-label': `Load ${saved.name}` });
  load.addEventListener('click', () => loadSavedQuery(ui, saved));
  const remove = saved.mine || isAdmin()
    ? h('button', { type: 'button', class: 'btn btn-small btn-quiet', testid: 'saved-delete', text: 'Delete', 'aria-label': `Delete ${saved.name}` })
    : null;
  remove?.addEventListener('click', async () => {
    const sure = await confirmAction({
      title: 'Delete this saved query?',
      body: [h('p', { text: `“${saved.name}”${saved.mine ? '' : ` belongs to ${saved.owner}`}${saved.shared ? ' and is shared with everyone' : ''}.` })],
      ok: 'Delete',
    });
    if (!sure) { remove.focus(); return; }
    try {
      await api('DELETE', `/api/siem/saved-queries/${encodeURIComponent(saved.id)}`);
      if (ui.loaded && ui.loaded.id === saved.id) ui.loaded = null;
      ui.status.ok(`Deleted “${saved.name}”.`);
      await loadSaved(ui);
      ui.save.focus();
    } catch (e) {
      ui.status.error(`Could not delete the saved query: ${describeError(e)}`);
    }
  });
  const whose = saved.mine ? (saved.shared ? 'yours, shared' : 'yours') : `shared by ${saved.owner}`;
  return h('li', { testid: 'saved-query' },
    h('div', { class: 'saved-head' }, h('strong', { testid: 'saved-query-name', text: saved.name }),
      h('span', { class: 'muted small', text: ` · ${whose} · ${saved.timespan}` }), load, remove),
    h('pre', { class: 'pre small', text: saved.query.length > 300 ? `${saved.query.slice(0, 300)}…` : saved.query }));
}

export async function queryPage() {
  const seq = currentPage();
  const ui = {
    seq,
    // An investigation's queries run on its pinned provider, whatever is chosen here.
    provider: h('select', { id: 'query-provider', testid: 'query-provider', disabled: Boolean(queryView.investigation) }, h('option', { value: '', text: 'Default provider' })),
    timespan: h('select', { id: 'query-timespan', testid: 'query-timespan' }, TIMESPANS.map(([v, l]) => h('option', { value: v, text: l }))),
    from: h('input', { type: 'datetime-local', id: 'query-from', testid: 'query-from', step: '1' }),
    to: h('input', { type: 'datetime-local', id: 'query-to', testid: 'query-to', step: '1' }),
    label: h('label', { for: 'query-text', text: 'Query' }),
    textarea: h('textarea', { id: 'query-text', testid: 'query-text', rows: '5', spellcheck: 'false', class: 'mono', 'aria-describedby': 'query-hint', autocomplete: 'off' }),
    hint: h('p', { class: 'hint', id: 'query-hint' }),
    run: h('button', { type: 'submit', class: 'btn btn-primary', testid: 'run-query', text: 'Run' }),
    cancel: h('button', { type: 'button', class: 'btn', testid: 'cancel-query', text: 'Cancel', hidden: true }),
    // Updated several times a second: kept out of the live status region screen readers announce.
    elapsed: h('span', { class: 'muted small', testid: 'query-elapsed', 'aria-hidden': 'true' }),
    save: h('button', { type: 'button', class: 'btn', testid: 'save-query', text: 'Save…' }),
    status: statusArea('query-status'),
    results: h('div', { class: 'results', testid: 'query-results' }),
    savedList: h('div', { testid: 'saved-list' }, h('p', { class: 'muted', text: 'Loading…' })),
    // The saved query last loaded: saving under its name updates it.
    loaded: null,
    providers: [],
    types: [],
  };
  const saving = saveForm(ui);
  ui.saveForm = saving.el;
  ui.save.addEventListener('click', saving.open);
  const form = queryForm(ui);
  showPage('Query', h('p', { class: 'lead', text: 'Run a query on one of your SIEM providers.' }),
    investigationBanner(ui), form, ui.status.el, ui.results,
    h('section', { class: 'card saved-queries', testid: 'saved-queries', 'aria-labelledby': 'saved-heading' },
      h('h2', { id: 'saved-heading', text: 'Saved queries' }), ui.savedList));
  ui.textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  ui.provider.addEventListener('change', () => describeLanguage(ui));
  form.addEventListener('submit', (event) => { event.preventDefault(); runQuery(ui); });
  ui.textarea.focus();
  await Promise.all([loadProviders(ui), loadSaved(ui)]);
}

/** The default first (as "Default provider (name)"), then every other provider once. */
async function loadProviders(ui) {
  try {
    [ui.providers, ui.types] = await Promise.all([providerNames(), providerTypes()]);
  } catch {
    return; // the default provider still works
  }
  if (!stillOn(ui.seq)) return;
  const def = ui.providers.find((p) => p.is_default);
  ui.provider.options[0].textContent = def ? `Default provider (${def.name})` : 'Default provider (none set)';
  for (const p of ui.providers.filter((x) => !x.is_default)) {
    ui.provider.append(h('option', { value: p.id, text: p.name }));
  }
  if (queryView.provider && ui.providers.some((p) => p.id === queryView.provider)) {
    ui.provider.value = def && def.id === queryView.provider ? '' : queryView.provider;
  }
  describeLanguage(ui);
}

/** The language, example and hint of the chosen provider's type. */
function describeLanguage(ui) {
  const chosen = ui.providers.find((p) => (ui.provider.value ? p.id === ui.provider.value : p.is_default));
  const type = typeNamed(ui.types, chosen ? chosen.provider_type : (ui.types[0] || {}).provider_type);
  if (!type) return;
  ui.label.textContent = `${type.query.language} query`;
  ui.hint.textContent = `${type.query.hint} Ctrl+Enter runs the query.`;
  if (!ui.textarea.value) ui.textarea.value = type.query.example;
}

function resultNotices(result) {
  const notices = [];
  if (result.partial) {
    const detail = result.error ? upstreamMessages(result.error).join(' — ') : '';
    notices.push(h('p', { class: 'notice notice-warn', role: 'alert', testid: 'partial-notice' },
      h('strong', { text: 'Partial results. ' }),
      `The SIEM returned only part of the result${detail ? `: ${detail}` : '.'}`));
  }
  if (result.truncated) {
    notices.push(h('p', { class: 'notice notice-warn', testid: 'truncated-notice' },
      h('strong', { text: 'Truncated. ' }),
      'The result has more rows than the server keeps; rows beyond the limit were dropped. Narrow the query or the time range.'));
  }
  return notices;
}

function showResult(ui, result, started) {
  const tables = Array.isArray(result.tables) ? result.tables : [];
  const rows = tables.reduce((n, t) => n + (Array.isArray(t.rows) ? t.rows.length : 0), 0);
  const latency = typeof result.latency_ms === 'number' ? result.latency_ms : performance.now() - started;
  ui.status.ok(`Query finished: ${plural(rows, 'row', 'rows')} in ${plural(tables.length, 'table', 'tables')} (${Math.round(latency)} ms).`);
  const provider = ui.providers.find((p) => p.id === result.provider_id);
  ui.results.append(...resultNotices(result),
    h('p', { class: 'muted small', testid: 'query-meta' },
      `Query ${result.query_id || ''} ran on ${provider ? `“${provider.name}” (${result.provider_id})` : `provider ${result.provider_id || ''}`}.`));
  if (!tables.length) ui.results.append(h('p', { class: 'muted', text: 'The query returned no tables.' }));
  else ui.results.append(exportButtons(ui, result));
  tables.forEach((t, i) => ui.results.append(renderTable(t, i)));
}

/** Offers `blob` as a file download named `name`. */
function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * CSV of the whole first table, made by the server (the query runs again there and every row it
 * keeps is written, exactly), and the whole result as JSON, numbers as sent.
 */
function exportButtons(ui, result) {
  const csv = h('button', { type: 'button', class: 'btn btn-small', testid: 'export-csv', text: 'Export CSV' });
  const json = h('button', { type: 'button', class: 'btn btn-small', testid: 'export-json', text: 'Export JSON' });
  const ran = { query: queryView.query, timespan: requestedTimespan(ui), provider_id: result.provider_id };
  csv.addEventListener('click', () => withBusyButton(csv, 'Exporting…', async () => {
    const response = await fetch('/api/siem/query', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'text/csv', 'Content-Type': 'application/json', 'X-Requested-With': 'SoCMate' },
      body: JSON.stringify(ran),
    });
    if (!response.ok) {
      ui.status.error(`The export failed (HTTP ${response.status}); run the query again to see why.`);
      return;
    }
    download(await response.blob(), `query-${result.query_id}.csv`);
    ui.status.ok('Exported the first table as CSV.');
  }));
  json.addEventListener('click', () => {
    download(new Blob([JSON.stringify(result, null, 2)], { type: 'application/json' }), `query-${result.query_id}.json`);
    ui.status.ok('Exported the result as JSON.');
  });
  return h('div', { class: 'toolbar', testid: 'export-bar' }, csv, json);
}

function showQueryError(ui, e) {
  ui.status.clear();
  let line;
  if (e instanceof ApiError && e.code === 'no_default_provider') {
    line = isAdmin()
      ? 'No default SIEM provider is set. Choose a provider above, or set a default under Admin › SIEM Providers.'
      : 'No default SIEM provider is set. Choose a provider above, or ask an administrator to set a default.';
  } else if (e instanceof ApiError && e.status === 503 && e.code === 'upstream_throttled') {
    line = `The SIEM is throttling queries; try again in ${e.retryAfter != null ? `${e.retryAfter} seconds` : 'a moment'}.`;
  } else {
    line = describeError(e);
  }
  const upstream = e instanceof ApiError ? upstreamMessages(e.problem.upstream) : [];
  ui.results.append(h('div', { class: 'notice notice-error', role: 'alert', testid: 'query-error' },
    h('p', {}, h('strong', { text: e instanceof ApiError && e.code === 'query_invalid' ? 'The query is invalid. ' : 'The query failed. ' }), line),
    upstream.length > 1 ? h('ul', { class: 'small' }, upstream.slice(1).map((m) => h('li', { text: m }))) : null,
    e instanceof ApiError && e.code ? h('p', { class: 'muted small' }, 'Error code ', h('code', { text: e.code })) : null));
}

/** The ISO 8601 timespan to send: a preset, or the custom `start/end` in UTC. */
function requestedTimespan(ui) {
  if (ui.timespan.value !== 'custom') return ui.timespan.value;
  // datetime-local gives "YYYY-MM-DDTHH:MM" (or with seconds); both ends are read as UTC.
  const utc = (value) => (value ? `${value.length === 16 ? `${value}:00` : value}Z` : '');
  const [start, end] = [utc(ui.from.value), utc(ui.to.value)];
  if (!start || !end || !(Date.parse(start) < Date.parse(end))) {
    ui.status.error('Choose the start and end of the custom range, the start before the end.');
    (start ? ui.to : ui.from).focus();
    return null;
  }
  return `${start}/${end}`;
}

async function runQuery(ui) {
  const query = ui.textarea.value;
  Object.assign(queryView, {
    query, timespan: ui.timespan.value, provider: ui.provider.value, from: ui.from.value, to: ui.to.value,
  });
  clear(ui.results);
  if (!query.trim()) {
    ui.status.error('Enter a query to run.');
    ui.textarea.focus();
    return;
  }
  const timespan = requestedTimespan(ui);
  if (!timespan) return;
  const body = { query, timespan };
  const investigation = queryView.investigation;
  if (queryView.provider && !investigation) body.provider_id = queryView.provider;
  const path = investigation ? `/api/investigations/${encodeURIComponent(investigation.id)}/query` : '/api/siem/query';
  ui.results.setAttribute('aria-busy', 'true');
  const started = performance.now();
  // Cancel aborts the request; the server then drops the SIEM call and frees its slot.
  const controller = new AbortController();
  const cancel = () => controller.abort();
  ui.cancel.hidden = false;
  ui.cancel.addEventListener('click', cancel);
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
  const tick = () => { ui.elapsed.textContent = `${seconds()} s`; };
  ui.status.busy('Running the query…');
  tick();
  const timer = window.setInterval(tick, 250);
  try {
    const result = await withBusyButton(ui.run, 'Running…',
      () => api('POST', path, body, { exact: true, signal: controller.signal }));
    window.clearInterval(timer);
    if (stillOn(ui.seq)) showResult(ui, result, started);
  } catch (e) {
    window.clearInterval(timer);
    if (!stillOn(ui.seq)) return;
    if (controller.signal.aborted) ui.status.info(`Query cancelled after ${seconds()} s.`);
    else showQueryError(ui, e);
  } finally {
    window.clearInterval(timer);
    ui.elapsed.textContent = '';
    ui.cancel.hidden = true;
    ui.cancel.removeEventListener('click', cancel);
    ui.results.removeAttribute('aria-busy');
  }
}
