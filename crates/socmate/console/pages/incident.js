// One incident: its details, timeline, evidence with verdicts and pivots, alerts with their
// techniques and recommended actions, comments with their authors, and its investigations.

import { ApiError, api, describeError } from '/console/api.js';
import { clear, h } from '/console/dom.js';
import { currentPage, showPage, stillOn } from '/console/shell.js';
import { statusArea, timeEl, withBusyButton } from '/console/ui.js';
import { humanStatus, incidentsView, productText, severityBadge } from '/console/pages/incidents.js';
import { openQueryWith } from '/console/pages/query.js';

/** `truePositive` → "True positive", `InitialAccess` → "Initial access": enum values as words. */
export function label(value) {
  if (typeof value !== 'string' || !value) return value;
  const words = value.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/[_-]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1).toLowerCase();
}

/** A KQL string literal. */
function kqlString(text) {
  return `"${String(text).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * What a piece of Graph evidence is (its `@odata.type`), the value that names it, and the KQL
 * that looks for it in the workspace's logs.
 */
function describeEvidence(e) {
  const type = String(e['@odata.type'] || '').replace('#microsoft.graph.security.', '').replace(/Evidence$/, '');
  const user = e.userAccount || {};
  const file = e.fileDetails || e.imageFile || {};
  const kinds = {
    user: [user.userPrincipalName || user.accountName, (v) => `SigninLogs\n| where UserPrincipalName =~ ${kqlString(v)}\n| take 100`],
    device: [e.deviceDnsName || e.hostName, (v) => `DeviceEvents\n| where DeviceName =~ ${kqlString(v)}\n| take 100`],
    ip: [e.ipAddress, (v) => `SigninLogs\n| where IPAddress == ${kqlString(v)}\n| take 100`],
    file: [file.sha256 || file.fileName, (v) => `DeviceFileEvents\n| where SHA256 == ${kqlString(v)} or FileName =~ ${kqlString(v)}\n| take 100`],
    process: [file.fileName || e.processCommandLine, (v) => `DeviceProcessEvents\n| where FileName =~ ${kqlString(v)}\n| take 100`],
    mailbox: [e.primaryAddress || e.userAccount?.userPrincipalName, (v) => `EmailEvents\n| where RecipientEmailAddress =~ ${kqlString(v)}\n| take 100`],
    url: [e.url, (v) => `UrlClickEvents\n| where Url == ${kqlString(v)}\n| take 100`],
  };
  const [value, pivot] = kinds[type] || [e.displayName || e.name || null, null];
  return { type: label(type) || 'Evidence', value, pivot: value && pivot ? pivot(value) : null };
}

function verdictBadge(verdict) {
  if (!verdict || verdict === 'unknown') return null;
  const tone = verdict === 'malicious' ? 'bad' : verdict === 'suspicious' ? 'warn' : 'neutral';
  return h('span', { class: `badge badge-small badge-${tone}`, testid: 'evidence-verdict', text: label(verdict) });
}

/** Every alert's evidence, once per entity, with its verdict and a pivot into the logs. */
function evidenceSection(alerts, incident) {
  const seen = new Map();
  for (const alert of alerts) {
    for (const e of Array.isArray(alert.evidence) ? alert.evidence : []) {
      const d = describeEvidence(e);
      const key = `${d.type}:${d.value}`;
      if (d.value && !seen.has(key)) seen.set(key, { ...d, verdict: e.verdict, roles: e.roles || [] });
    }
  }
  if (!seen.size) return null;
  const provider = (incident.provider_ids || [])[0] || '';
  return [
    h('h2', { id: 'evidence-heading', text: `Evidence (${seen.size})` }),
    h('div', { class: 'table-wrap' }, h('table', { class: 'data', testid: 'evidence-table', 'aria-labelledby': 'evidence-heading' },
      h('thead', {}, h('tr', {}, ['Entity', 'Type', 'Verdict', 'Roles', 'Investigate']
        .map((text) => h('th', { scope: 'col', text })))),
      h('tbody', {}, [...seen.values()].map((d) => h('tr', { testid: 'evidence-row' },
        h('td', {}, h('code', { class: 'mono', testid: 'evidence-value', text: d.value })),
        h('td', { text: d.type }),
        h('td', {}, verdictBadge(d.verdict) || h('span', { class: 'muted', text: '—' })),
        h('td', { text: d.roles.map(label).join(', ') || '—' }),
        h('td', {}, d.pivot ? h('button', {
          type: 'button', class: 'btn btn-small', testid: 'evidence-pivot',
          'aria-label': `Query logs for ${d.value}`, text: 'Query logs',
          onclick: () => openQueryWith(d.pivot, provider),
        }) : null)))))),
  ];
}

/** Created, first and last activity (over its alerts), last update. */
function timeline(incident, alerts) {
  const times = (key) => alerts.map((a) => a[key]).filter((t) => typeof t === 'string').sort();
  const first = times('first_activity_date_time')[0];
  const last = times('last_activity_date_time').slice(-1)[0];
  return h('ol', { class: 'timeline-list', testid: 'incident-timeline' },
    [['Created', incident.created_at], ['First activity', first], ['Last activity', last], ['Last updated', incident.last_update_at]]
      .filter(([, at]) => at)
      .map(([what, at]) => h('li', {}, h('span', { class: 'muted small', text: `${what}: ` }), timeEl(at))));
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

function details(incident) {
  return h('dl', { class: 'details', testid: 'incident-details' },
    detailRow('Severity', severityBadge(incident.severity)),
    detailRow('Status', h('span', { testid: 'detail-status', text: humanStatus(incident.status) })),
    detailRow('Classification', label(incident.classification)),
    detailRow('Determination', label(incident.determination)),
    detailRow('Assigned to', incident.assigned_to),
    detailRow('Tenant', incident.tenant_id),
    detailRow('Read from', incident.origin ? h('span', { testid: 'detail-origin', text: incident.origin }) : null),
    detailRow('Products', productText(incident)),
    detailRow('SIEM incident id', h('code', { text: incident.external_id })),
    detailRow('Tags', tagList([...(incident.custom_tags || []), ...(incident.system_tags || [])])),
    detailRow('Open in the SIEM', safeLink(incident.incident_web_url, 'Open the incident ↗')));
}

function alertsTable(alerts) {
  if (!alerts.length) return h('p', { class: 'muted', testid: 'alerts-empty', text: 'No alerts are linked to this incident.' });
  const rows = alerts.map((a) => h('tr', { testid: 'alert-row' },
    h('td', {},
      h('span', { class: 'alert-title', text: a.title || a.display_name || a.external_id }),
      safeLink(a.alert_web_url, ' Open ↗'),
      tagList(a.mitre_techniques),
      a.description ? h('details', {}, h('summary', { text: 'Description' }), h('p', { class: 'pre', text: a.description })) : null,
      a.recommended_actions ? h('details', { testid: 'recommended-actions' },
        h('summary', { text: 'Recommended actions' }), h('p', { class: 'pre', text: a.recommended_actions })) : null),
    h('td', {}, severityBadge(a.severity)),
    h('td', { text: label(a.status) || '—' }),
    h('td', { text: label(a.category) || a.tactics || '—' }),
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
    h('ul', { class: 'comments', testid: 'comments' }, comments.map((c) => h('li', { testid: 'comment' },
      h('p', { class: 'pre', text: c.comment || JSON.stringify(c) }),
      h('p', { class: 'muted small', testid: 'comment-byline' },
        c.created_by_display_name || 'Unknown author', ' · ', c.created_date_time ? timeEl(c.created_date_time) : 'time not recorded')))),
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
  const title = incident.display_name || `Incident ${incident.external_id}`;
  const investigate = h('button', { type: 'button', class: 'btn btn-small', testid: 'open-investigation', text: 'Open an investigation' });
  const investigateStatus = statusArea('open-investigation-status');
  investigate.addEventListener('click', () => withBusyButton(investigate, 'Opening…', async () => {
    try {
      const link = incident.incident_web_url ? `\n${incident.incident_web_url}` : '';
      const created = await api('POST', '/api/investigations', {
        title: `Incident ${incident.external_id}: ${title}`.slice(0, 200),
        description: `From incident ${incident.external_id} (SoCMate ${incident.id}).${link}`,
        incident_id: incident.id,
      });
      window.location.hash = `#/investigations/${encodeURIComponent(created.id)}`;
    } catch (e) {
      investigateStatus.error(`Could not open an investigation: ${describeError(e)}`);
    }
  }));
  showPage(title,
    h('p', { class: 'breadcrumb' }, h('a', { href: incidentsView.listHash || '#/incidents', testid: 'back-to-incidents', text: '← Incidents' })),
    h('div', { class: 'toolbar' }, investigate), investigateStatus.el,
    incident.description ? h('p', { class: 'lead', testid: 'incident-description', text: incident.description }) : null,
    details(incident),
    timeline(incident, alerts),
    evidenceSection(alerts, incident),
    h('h2', { id: 'alerts-heading', text: `Alerts (${alerts.length})` }),
    alertsTable(alerts),
    commentList(Array.isArray(incident.comments) ? incident.comments : []),
    investigationsSection(seq, incident));
}

/** The investigations this incident is linked to, and a way to link it to another. */
function investigationsSection(seq, incident) {
  const list = h('ul', { testid: 'incident-investigations' });
  const status = statusArea('link-status');
  const choice = h('select', { id: 'link-investigation', testid: 'link-investigation' });
  const linkButton = h('button', { type: 'button', class: 'btn btn-small', testid: 'link-incident', text: 'Link' });
  const picker = h('div', { class: 'toolbar', hidden: true },
    h('label', { for: 'link-investigation', text: 'Link to the investigation' }), choice, linkButton);
  const load = async () => {
    const [linked, recent] = await Promise.all([
      api('GET', `/api/investigations?incident_id=${encodeURIComponent(incident.id)}&limit=100`),
      api('GET', '/api/investigations?limit=100'),
    ]);
    if (!stillOn(seq)) return;
    const mine = (linked && linked.investigations) || [];
    clear(list).append(...mine.map((i) => h('li', {},
      h('a', { href: `#/investigations/${encodeURIComponent(i.id)}`, testid: 'incident-investigation', text: i.title }))));
    if (!mine.length) list.append(h('li', { class: 'muted', text: 'Not linked to an investigation.' }));
    const linkedIds = new Set(mine.map((i) => i.id));
    const others = ((recent && recent.investigations) || []).filter((i) => !linkedIds.has(i.id));
    clear(choice).append(...others.map((i) => h('option', { value: i.id, text: i.title })));
    picker.hidden = !others.length;
  };
  linkButton.addEventListener('click', () => withBusyButton(linkButton, 'Linking…', async () => {
    const title = choice.selectedOptions[0]?.textContent;
    try {
      await api('PUT', `/api/investigations/${encodeURIComponent(choice.value)}/incidents/${encodeURIComponent(incident.id)}`);
      await load();
      status.ok(`Linked to “${title}”.`);
      (picker.hidden ? list.querySelector('a') : choice)?.focus();
    } catch (e) {
      status.error(`Could not link the incident: ${describeError(e)}`);
    }
  }));
  load().catch((e) => { if (stillOn(seq)) status.error(`Could not load the investigations: ${describeError(e)}`); });
  return [h('h2', { text: 'Investigations' }), list, picker, status.el];
}
