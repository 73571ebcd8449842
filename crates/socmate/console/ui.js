// Shared widgets: announcements, times, status areas, busy buttons.

import { $, clear, h } from '/console/dom.js';

/** Announces a message to screen readers through the global polite live region. */
export function announce(message) {
  const region = $('#announcer');
  region.textContent = '';
  // A fresh text node after a tick makes repeated identical messages heard again.
  window.setTimeout(() => { region.textContent = message; }, 30);
}

export function formatTime(value) {
  if (!value) return null;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} `
    + `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())} UTC`;
}

export function timeEl(value, fallback = 'never') {
  const text = formatTime(value);
  if (!text) return h('span', { class: 'muted', text: fallback });
  return h('time', { datetime: value, title: value, text });
}

export function plural(n, one, many) {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** A status/alert area that can show progress, success and errors. */
export function statusArea(testid, { polite = true } = {}) {
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
export async function withBusyButton(button, busyLabel, work) {
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

export const sleep = (ms) => new Promise((resolve) => { window.setTimeout(resolve, ms); });

/**
 * Asks to confirm an action in the page's dialog: `title`, `body` (nodes), the confirming
 * button's text. Resolves true when confirmed; Cancel has the focus, so Enter never confirms by
 * accident.
 */
export function confirmAction({ title, body, ok }) {
  const dialog = $('#confirm-dialog');
  $('#confirm-title').textContent = title;
  clear($('#confirm-body')).append(...body);
  $('#confirm-ok').textContent = ok;
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
