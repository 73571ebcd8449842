// One incident: its details, alerts and comments.

import { ApiError, api, describeError } from '/console/api.js';
import { h } from '/console/dom.js';
import { currentPage, showPage, stillOn } from '/console/shell.js';
import { timeEl } from '/console/ui.js';
import { humanStatus, incidentsView, productText, severityBadge } from '/console/pages/incidents.js';

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

function details(incident) {
  return h('dl', { class: 'details', testid: 'incident-details' },
    detailRow('Severity', severityBadge(incident.severity)),
    detailRow('Status', h('span', { testid: 'detail-status', text: humanStatus(incident.status) })),
    detailRow('Classification', incident.classification),
    detailRow('Determination', incident.determination),
    detailRow('Assigned to', incident.assigned_to),
    detailRow('Tenant', incident.tenant_id),
    detailRow('Read from', incident.origin ? h('span', { testid: 'detail-origin', text: incident.origin }) : null),
    detailRow('Products', productText(incident)),
    detailRow('Created', incident.created_at ? timeEl(incident.created_at) : null),
    detailRow('Last updated', incident.last_update_at ? timeEl(incident.last_update_at) : null),
    detailRow('SIEM incident id', h('code', { text: incident.external_id })),
    detailRow('Tags', tagList([...(incident.custom_tags || []), ...(incident.system_tags || [])])),
    detailRow('Open in the SIEM', safeLink(incident.incident_web_url, 'Open the incident ↗')));
}

function alertsTable(alerts) {
  if (!alerts.length) return h('p', { class: 'muted', testid: 'alerts-empty', text: 'No alerts are linked to this incident.' });
  const rows = alerts.map((a) => h('tr', { testid: 'alert-row' },
    h('td', {},
      h('span', { class: 'alert-title', text: a.title || a.display_name || a.external_id }),
      a.description ? h('details', {}, h('summary', { text: 'Description' }), h('p', { class: 'pre', text: a.description })) : null),
    h('td', {}, severityBadge(a.severity)),
    h('td', { text: a.status || '—' }),
    h('td', { text: a.category || a.tactics || '—' }),
    h('td', { text: a.product || a.service_source || '—' }),
    h('td', {}, timeEl(a.created_at || a.last_update_at, '—'))));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data', testid: 'alerts-table', 'aria-labelledby': 'alerts-heading' },
    h('thead', {}, h('tr', {}, ['Alert', 'Severity', 'Status', 'Category', 'Source', 'Created']
      .map((label) => h('th', { scope: 'col', text: label })))),
    h('tbody', {}, rows)));
}

function commentList(comments) {
  if (!comments.length) return null;
  return [
    h('h2', { text: `Comments (${comments.length})` }),
    h('ul', { class: 'comments' }, comments.map((c) => h('li', {},
      h('p', { class: 'pre', text: c.comment || JSON.stringify(c) }),
      h('p', { class: 'muted small' }, c.created_by_display_name || '', ' ', c.created_date_time ? timeEl(c.created_date_time) : null)))),
  ];
}

export async function incidentDetailPage(id) {
  const seq = currentPage();
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
  showPage(incident.display_name || `Incident ${incident.external_id}`,
    h('p', { class: 'breadcrumb' }, h('a', { href: incidentsView.listHash || '#/incidents', testid: 'back-to-incidents', text: '← Incidents' })),
    incident.description ? h('p', { class: 'lead', testid: 'incident-description', text: incident.description }) : null,
    details(incident),
    h('h2', { id: 'alerts-heading', text: `Alerts (${alerts.length})` }),
    alertsTable(alerts),
    commentList(Array.isArray(incident.comments) ? incident.comments : []));
}
