// The page shell: who is signed in, the header and navigation, the address, and replacing the
// main area with a page.

import { $, append, clear, h } from '/console/dom.js';
import { announce } from '/console/ui.js';

export const session = {
  user: null, // {email, role}
  flash: null, // {kind, message} shown once on the next page render
};

export const isAdmin = () => Boolean(session.user && session.user.role === 'admin');

export function setFlash(kind, message) {
  session.flash = { kind, message };
}

/** Bumped on each page render; async loads check it before drawing (see stillOn). */
let pageSeq = 0;

/** Starts a new page; loads begun for the previous one stop drawing. */
export function newPage() {
  pageSeq += 1;
  return pageSeq;
}

/** The current page's number, for `stillOn`. */
export const currentPage = () => pageSeq;

/** True while the page that started an async load is still the one shown. */
export const stillOn = (seq) => seq === pageSeq;

/** The route part of the hash: `#/incidents?status=active` → `/incidents`. */
export function currentPath() {
  const hash = window.location.hash || '';
  const path = hash.startsWith('#') ? hash.slice(1) : '';
  return path.split('?')[0] || '/';
}

/** The query part of the hash, e.g. the incident filters. */
export function currentQuery() {
  const hash = window.location.hash || '';
  const at = hash.indexOf('?');
  return new URLSearchParams(at >= 0 ? hash.slice(at + 1) : '');
}

const NAV = [
  { href: '#/incidents', label: 'Incidents', testid: 'nav-incidents', match: '/incidents' },
  { href: '#/query', label: 'Query', testid: 'nav-query', match: '/query' },
  { href: '#/investigations', label: 'Investigations', testid: 'nav-investigations', match: '/investigations' },
  { href: '#/history', label: 'History', testid: 'nav-history', match: '/history' },
  { href: '#/admin/providers', label: 'Admin › SIEM Providers', testid: 'nav-admin-providers', match: '/admin/providers', admin: true },
  { href: '#/admin/audit', label: 'Admin › Audit log', testid: 'nav-admin-audit', match: '/admin/audit', admin: true },
];

export function renderHeader() {
  const nav = $('#nav');
  const userArea = $('#user');
  clear(nav);
  if (!session.user) {
    nav.hidden = true;
    userArea.hidden = true;
    return;
  }
  const list = h('ul', { class: 'nav-list' });
  for (const link of NAV.filter((l) => !l.admin || isAdmin())) {
    list.append(h('li', {}, h('a', {
      href: link.href, testid: link.testid, dataset: { match: link.match }, text: link.label,
    })));
  }
  nav.append(list);
  nav.hidden = false;
  $('#user-email').textContent = session.user.email;
  const role = $('#user-role');
  role.textContent = session.user.role;
  role.className = `role-badge role-${isAdmin() ? 'admin' : 'analyst'}`;
  userArea.hidden = false;
  markCurrentNav();
}

export function markCurrentNav() {
  const path = currentPath();
  for (const a of document.querySelectorAll('#nav a')) {
    if (path.startsWith(a.dataset.match)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** Replaces the main area with a page and moves focus to its heading. */
export function showPage(title, ...content) {
  const main = $('#main');
  clear(main);
  document.title = `${title} · SoCMate`;
  const heading = h('h1', { tabindex: '-1', testid: 'page-title', text: title });
  main.append(heading);
  if (session.flash) {
    const { kind, message } = session.flash;
    session.flash = null;
    main.append(h('p', { class: `notice notice-${kind}`, role: 'status', testid: 'flash', text: message }));
    announce(message);
  }
  append(main, content);
  heading.focus({ preventScroll: true });
  window.scrollTo(0, 0);
  return main;
}

/** A page that only says something went wrong, with a way back. */
export function showProblem(title, message, back = { href: '#/incidents', text: 'Go to incidents' }) {
  showPage(title,
    h('p', { class: 'notice notice-error', role: 'alert', testid: 'page-problem', text: message }),
    h('p', {}, h('a', { href: back.href, text: back.text })));
}
