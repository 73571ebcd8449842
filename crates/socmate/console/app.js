// SoCMate console: a small single-page app over the SoCMate API.
//
// Plain ES modules, no build step, no dependencies. Every piece of server data reaches the DOM
// through textContent or attribute setters (never innerHTML), so nothing the API returns can run.
// `api.js` is the API client, `shell.js` the page frame, `router.js` maps addresses to the pages
// in `pages/`; a provider type's form comes from the API (`GET /api/siem/provider-types`), so
// no page knows any SIEM product.

import { ApiError, api, describeError, whenUnauthenticated } from '/console/api.js';
import { $, clear, h } from '/console/dom.js';
import { renderSignIn, signOut, startSession } from '/console/pages/sign-in.js';
import { route } from '/console/router.js';
import { session } from '/console/shell.js';

whenUnauthenticated(() => {
  if (!session.user) return;
  renderSignIn('Your session has ended. Sign in again to continue.');
});

function unavailable(error) {
  const main = $('#main');
  clear(main);
  main.append(h('h1', { text: 'SoCMate is unavailable' }),
    h('p', { class: 'notice notice-error', role: 'alert', text: describeError(error) }),
    h('p', {}, h('button', { type: 'button', class: 'btn', onclick: () => window.location.reload(), text: 'Try again' })));
}

async function boot() {
  $('#sign-out').addEventListener('click', signOut);
  // The console routes on the URL's hash, so the skip link moves focus itself instead of
  // navigating to "#main" (which the router would read as a page that does not exist).
  $('.skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    $('#main').focus();
  });
  window.addEventListener('hashchange', () => { route(); });
  try {
    const me = await api('GET', '/api/auth/me', undefined, { allow401: true });
    await startSession(me);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) renderSignIn();
    else unavailable(e);
  }
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
