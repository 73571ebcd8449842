// Pieces the providers list and the provider form share: badges and the connection test result.

import { h } from '/console/dom.js';
import { timeEl } from '/console/ui.js';

const CHECK_WORDS = {
  passed: { icon: '✓', word: 'Passed' },
  failed: { icon: '✗', word: 'Failed' },
  skipped: { icon: '–', word: 'Skipped' },
  warning: { icon: '!', word: 'Warning' },
};

/** The core's own check (an unreadable stored secret); every other label is the type's. */
const CORE_CHECKS = { credentials: 'Stored credentials' };

export function statusBadge(status) {
  const labels = { active: 'Active', error: 'Error', inactive: 'Inactive' };
  return h('span', {
    class: `badge badge-${status === 'active' ? 'ok' : status === 'error' ? 'bad' : 'neutral'}`,
    testid: 'status-badge',
    dataset: { status },
    text: labels[status] || status,
  });
}

export function healthText(provider) {
  const status = provider.last_health_status;
  return h('span', { class: 'health', testid: 'health' },
    timeEl(provider.last_health_check, 'Never tested'),
    status ? h('span', {
      class: `badge badge-small badge-${status === 'healthy' ? 'ok' : 'bad'}`,
      dataset: { health: status },
      text: status === 'healthy' ? 'Healthy' : 'Failed',
    }) : null);
}

/** The label of a check, from the provider type's form. */
function checkLabel(type, name) {
  const check = type && (type.checks || []).find((c) => c.name === name);
  return (check && check.label) || CORE_CHECKS[name] || name;
}

function checkItem(check, type) {
  const passed = check.status === 'passed';
  const { icon, word } = CHECK_WORDS[check.status] || CHECK_WORDS.failed;
  return h('li', {
    class: `check check-${check.status}`,
    testid: `check-${check.name}`,
    dataset: { status: check.status, code: check.code || '' },
  },
  h('span', { class: 'check-icon', 'aria-hidden': 'true', text: icon }),
  h('div', { class: 'check-body' },
    h('div', { class: 'check-title' },
      h('strong', { text: checkLabel(type, check.name) }),
      ' ',
      h('span', { class: 'check-word', text: word }),
      check.code ? h('code', { class: 'check-code', testid: 'check-code', text: check.code }) : null,
      typeof check.latency_ms === 'number' && passed
        ? h('span', { class: 'muted', text: ` ${Math.round(check.latency_ms)} ms` }) : null),
    check.hint ? h('p', { class: 'check-hint', testid: 'check-hint', text: check.hint }) : null));
}

/** A connection test result: the seed's verdict plus each check with its hint. */
export function renderTestResult(result, type, testid = 'test-result', heading = 'Connection test') {
  const healthy = result.status === 'healthy';
  const checks = Array.isArray(result.checks) ? result.checks : [];
  const latency = typeof result.latency_ms === 'number' ? ` (${Math.round(result.latency_ms)} ms)` : '';
  return h('section', {
    class: `test-result ${healthy ? 'test-ok' : 'test-bad'}`,
    testid,
    dataset: { status: result.status },
    'aria-label': heading,
  },
  h('p', { class: 'test-verdict', testid: 'test-verdict' },
    h('span', { class: `badge badge-${healthy ? 'ok' : 'bad'}`, text: healthy ? 'Healthy' : 'Error' }),
    ' ',
    h('span', { text: `${result.message || ''}${latency}` })),
  checks.length ? h('ul', { class: 'checks', testid: 'checks' }, checks.map((c) => checkItem(c, type))) : null);
}

/** The form of the type named `name` among `types`. */
export const typeNamed = (types, name) => types.find((t) => t.provider_type === name) || null;
