// The router: the hash names the page (`#/incidents`, `#/admin/providers/new`, …).

import { h } from '/console/dom.js';
import { incidentDetailPage } from '/console/pages/incident.js';
import { incidentsPage } from '/console/pages/incidents.js';
import { providerFormPage } from '/console/pages/provider-form.js';
import { providersPage } from '/console/pages/providers.js';
import { queryPage } from '/console/pages/query.js';
import { auditLogPage, historyPage, investigationPage, investigationsPage } from '/console/pages/records.js';
import { currentPath, isAdmin, markCurrentNav, newPage, session, showPage } from '/console/shell.js';

const routes = [
  { pattern: /^\/incidents\/?$/, view: () => incidentsPage() },
  { pattern: /^\/incidents\/([^/]+)$/, view: (m) => incidentDetailPage(decodeURIComponent(m[1])) },
  { pattern: /^\/query\/?$/, view: () => queryPage() },
  { pattern: /^\/history\/?$/, view: () => historyPage() },
  { pattern: /^\/investigations\/?$/, view: () => investigationsPage() },
  { pattern: /^\/investigations\/([0-9a-f]+)$/, view: (m) => investigationPage(m[1]) },
  { pattern: /^\/admin\/audit\/?$/, view: () => auditLogPage(), admin: true },
  { pattern: /^\/admin\/providers\/?$/, view: () => providersPage(), admin: true },
  { pattern: /^\/admin\/providers\/new$/, view: () => providerFormPage(null), admin: true },
  { pattern: /^\/admin\/providers\/([0-9a-f]+)\/edit$/, view: (m) => providerFormPage(m[1]), admin: true },
];

export async function route() {
  if (!session.user) return;
  const path = currentPath();
  if (path === '/' || path === '/login') {
    window.location.hash = '#/incidents';
    return;
  }
  markCurrentNav();
  newPage();
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
