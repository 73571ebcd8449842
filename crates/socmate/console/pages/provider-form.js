// Add Provider and Edit / rotate secret: the form is built from the provider type's form
// (`GET /api/siem/provider-types`), so this page knows no SIEM product. Test Connection runs
// before Save; the server's 422 names every wrong field, shown next to it.

import { ApiError, api, describeError, providerTypes } from '/console/api.js';
import { clear, h } from '/console/dom.js';
import { clearFieldErrors, field, setFieldError, showFieldErrors } from '/console/form.js';
import { currentPage, setFlash, showPage, showProblem, stillOn } from '/console/shell.js';
import { confirmAction, statusArea } from '/console/ui.js';
import { renderTestResult, typeNamed } from '/console/pages/provider-parts.js';

const LIST = '#/admin/providers';
const PROVIDERS = '/api/admin/siem-providers';

/** The neutral fields every provider type has. */
const NEUTRAL = {
  name: { label: 'Name', hint: 'A label you choose. Must be unique.' },
  provider_type: { label: 'Provider type', hint: 'The SIEM product this provider connects to.' },
  client_secret_expires_at: {
    label: 'Secret expires (optional)',
    hint: 'The expiry date shown next to the secret where you created it. SoCMate warns before it expires.',
  },
  sync_incidents: {
    label: 'Sync incidents from this provider',
    hint: 'The default provider always syncs; tick this to sync a non-default provider too.',
  },
};

const connectionInfo = (f) => ({ label: f.label, hint: `Where to find it: ${f.help}` });

export async function providerFormPage(id) {
  const seq = currentPage();
  const title = id ? 'Edit SIEM provider' : 'Add Provider';
  showPage(title, h('p', { class: 'muted', role: 'status', text: 'Loading…' }));
  let types;
  let existing = null;
  try {
    [types, existing] = await Promise.all([
      providerTypes(),
      id ? api('GET', `${PROVIDERS}/${encodeURIComponent(id)}`) : null,
    ]);
  } catch (e) {
    if (stillOn(seq)) showProblem(title, `Could not load the form: ${describeError(e)}`, { href: LIST, text: 'Back to SIEM Providers' });
    return;
  }
  if (!stillOn(seq) || !types.length) return;
  const page = { seq, id, existing, types, type: typeNamed(types, existing ? existing.provider_type : types[0].provider_type) };
  const form = buildForm(page);
  showPage(existing ? `Edit “${existing.name}”` : 'Add Provider',
    h('p', { class: 'breadcrumb' }, h('a', { href: LIST, text: '← SIEM Providers' })),
    page.intro = h('p', { class: 'lead', testid: 'form-intro', text: introText(page) }),
    form);
}

function introText({ existing, type }) {
  if (existing) return 'Rename or re-point the provider, or rotate its secret. Changing connection details resets its health until the next test.';
  return type ? type.intro : '';
}

function neutralControls(page) {
  const { existing, types } = page;
  const controls = {
    name: h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: '200', required: true }),
    provider_type: h('select', {}, types.map((t) => h('option', { value: t.provider_type, text: t.label }))),
    client_secret_expires_at: h('input', { type: 'date' }),
    sync_incidents: h('input', { type: 'checkbox' }),
  };
  controls.provider_type.value = page.type.provider_type;
  if (existing) {
    controls.provider_type.disabled = true;
    controls.name.value = existing.name;
    controls.sync_incidents.checked = Boolean(existing.sync_incidents);
    if (existing.client_secret_expires_at) {
      controls.client_secret_expires_at.value = String(existing.client_secret_expires_at).slice(0, 10);
    }
  }
  controls.name.placeholder = `e.g. ${page.type.name_placeholder}`;
  return controls;
}

/** One control per connection field of the type (the secret last, as the type lists it). */
function connectionControls(type, existing) {
  const controls = {};
  for (const f of type.fields) {
    let control;
    if (f.input === 'select') {
      control = h('select', {}, f.options.map((o) => h('option', { value: o.value, text: o.label })));
    } else if (f.input === 'secret') {
      control = h('input', {
        type: 'password', autocomplete: 'new-password', spellcheck: 'false', maxlength: '1024', required: !existing,
      });
    } else {
      control = h('input', {
        type: 'text', autocomplete: 'off', spellcheck: 'false', class: 'mono', required: f.required,
        placeholder: f.placeholder || undefined, pattern: f.pattern || undefined,
      });
    }
    if (existing && f.input !== 'secret') control.value = existing[f.name] ?? (f.options && f.options.length ? f.options[0].value : '');
    controls[f.name] = control;
  }
  return controls;
}

function connectionFields(page) {
  const { type, existing, controls } = page;
  return type.fields.map((f) => {
    const required = f.input === 'secret' ? !existing : f.required;
    const el = field(f.name, controls[f.name], connectionInfo(f), { required });
    if (f.input === 'secret' && existing) {
      el.querySelector('.hint').after(h('p', { class: 'hint hint-strong', testid: 'secret-keep-note' },
        `Leave empty to keep the current secret (${existing.client_secret_masked}). Enter a new value to rotate it.`));
    }
    return el;
  });
}

/** In edit mode a new secret starts without the old secret's expiry date (as the API does). */
function resetExpiryOnRotation(page, expiryField) {
  const { controls } = page;
  const secret = controls.client_secret;
  const storedDate = controls.client_secret_expires_at.value;
  const note = h('p', { class: 'hint hint-strong', testid: 'expiry-reset-note', hidden: true },
    'The stored date belonged to the old secret. Enter the new secret\'s expiry date, or leave it empty.');
  expiryField.querySelector('.hint').after(note);
  if (!secret) return;
  secret.addEventListener('input', () => {
    if (secret.value && storedDate && controls.client_secret_expires_at.value === storedDate) {
      controls.client_secret_expires_at.value = '';
      note.hidden = false;
    }
  });
}

function buildForm(page) {
  const neutral = neutralControls(page);
  page.controls = { ...neutral, ...connectionControls(page.type, page.existing) };
  const expiryField = field('client_secret_expires_at', neutral.client_secret_expires_at, NEUTRAL.client_secret_expires_at);
  if (page.existing) resetExpiryOnRotation(page, expiryField);
  page.connection = h('fieldset', { class: 'grid', testid: 'connection-fields' },
    h('legend', { text: 'Connection' }), connectionFields(page), expiryField);
  page.testButton = h('button', { type: 'button', class: 'btn', testid: 'test-connection', text: 'Test Connection' });
  page.saveButton = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'save-provider', text: page.existing ? 'Save changes' : 'Save' });
  page.status = statusArea('form-status');
  page.resultHolder = h('div', { class: 'result-holder', testid: 'test-result-holder' });
  page.formError = h('p', { class: 'form-error', role: 'alert', testid: 'form-error', hidden: true });
  const form = h('form', { class: 'card provider-form', testid: 'provider-form', novalidate: true },
    h('fieldset', { class: 'grid' },
      h('legend', { text: 'Provider' }),
      field('name', neutral.name, NEUTRAL.name, { required: true }),
      field('provider_type', neutral.provider_type, NEUTRAL.provider_type)),
    page.connection,
    h('fieldset', {}, h('legend', { text: 'Incidents' }), field('sync_incidents', neutral.sync_incidents, NEUTRAL.sync_incidents)),
    page.formError,
    h('div', { class: 'actions' }, page.testButton, page.saveButton,
      h('a', { href: LIST, class: 'btn btn-quiet', testid: 'cancel-provider', text: 'Cancel' })),
    page.status.el,
    page.resultHolder);
  page.form = form;
  neutral.provider_type.addEventListener('change', () => switchType(page, neutral.provider_type.value));
  page.testButton.addEventListener('click', () => testConnection(page));
  form.addEventListener('submit', (event) => { event.preventDefault(); save(page); });
  return form;
}

/** Another type chosen while adding: its own connection fields replace the current ones. */
function switchType(page, name) {
  page.type = typeNamed(page.types, name);
  const expiryField = page.connection.querySelector('[data-field="client_secret_expires_at"]');
  const kept = { name: page.controls.name, provider_type: page.controls.provider_type,
    client_secret_expires_at: page.controls.client_secret_expires_at, sync_incidents: page.controls.sync_incidents };
  page.controls = { ...kept, ...connectionControls(page.type, null) };
  clear(page.connection).append(h('legend', { text: 'Connection' }), ...connectionFields(page), expiryField);
  page.controls.name.placeholder = `e.g. ${page.type.name_placeholder}`;
  page.intro.textContent = introText(page);
  clear(page.resultHolder);
}

const value = (control) => (control.type === 'checkbox' ? control.checked : control.type === 'password' ? control.value : control.value.trim());

/** The connection fields' values, by the type's field names (the secret included). */
function connectionValues({ type, controls }) {
  return Object.fromEntries(type.fields.map((f) => [f.name, value(controls[f.name])]));
}

function showFormError(page, message) {
  page.formError.textContent = message || '';
  page.formError.hidden = !message;
}

/** Browser-side checks only for emptiness; the server's 422 names every other problem. */
function checkRequired(page, { forTest }) {
  const { form, type, controls, existing } = page;
  const missing = type.fields
    .filter((f) => (f.input === 'secret' ? !existing : f.required))
    .map((f) => f.name)
    .filter((name) => !value(controls[name]));
  if (!forTest && !value(controls.name)) missing.unshift('name');
  for (const name of missing) {
    const f = type.fields.find((x) => x.name === name);
    setFieldError(form, name, `${f ? f.label : NEUTRAL[name].label} is required.`);
  }
  if (missing.length) form.querySelector(`[name="${missing[0]}"]`).focus();
  return missing.length === 0;
}

function busy(page, on) {
  page.testButton.disabled = on;
  page.saveButton.disabled = on;
  page.form.setAttribute('aria-busy', on ? 'true' : 'false');
}

/** The test to run: the saved provider when editing without a new secret, else the form's values. */
function testRequest(page) {
  const { existing, type, id } = page;
  const values = connectionValues(page);
  if (existing && !values.client_secret) {
    const changed = type.fields.some((f) => f.input !== 'secret' && values[f.name] !== (existing[f.name] ?? values[f.name]));
    if (changed) {
      setFieldError(page.form, 'client_secret', 'Enter the secret to test changed connection details (or save first, then test the saved provider).');
      page.controls.client_secret.focus();
      return null;
    }
    return () => api('POST', `${PROVIDERS}/${encodeURIComponent(id)}/test`);
  }
  if (!checkRequired(page, { forTest: true })) return null;
  return () => api('POST', `${PROVIDERS}/test`, { provider_type: type.provider_type, ...values });
}

function reportRequestError(page, e, action) {
  page.status.clear();
  if (e instanceof ApiError && e.status === 422 && e.errors.length) {
    const rest = showFieldErrors(page.form, e.errors);
    showFormError(page, rest.length ? rest.join(' ') : `Fix the highlighted fields, then ${action} again.`);
  } else if (e instanceof ApiError && e.status === 429 && action === 'test') {
    showFormError(page, `Too many connection tests; try again in ${e.retryAfter != null ? e.retryAfter : 60} seconds.`);
  } else if (e instanceof ApiError && e.code === 'name_taken') {
    setFieldError(page.form, 'name', e.message);
    page.controls.name.focus();
  } else {
    showFormError(page, action === 'test' ? `The connection test could not run: ${describeError(e)}` : `Could not save: ${describeError(e)}`);
  }
}

async function testConnection(page) {
  clearFieldErrors(page.form);
  showFormError(page, '');
  clear(page.resultHolder);
  const request = testRequest(page);
  if (!request) return;
  const { testButton, status } = page;
  busy(page, true);
  testButton.textContent = 'Testing…';
  testButton.setAttribute('aria-busy', 'true');
  status.busy('Testing the connection… this can take a few seconds.');
  try {
    const result = await request();
    if (!stillOn(page.seq)) return;
    page.lastTest = result;
    const healthy = result.status === 'healthy';
    const failed = (result.checks || []).filter((c) => c.status === 'failed').map((c) => c.name);
    status[healthy ? 'ok' : 'error'](healthy
      ? 'Connection test passed: every check succeeded.'
      : `Connection test failed${failed.length ? ` (${failed.join(', ')})` : ''}. See each check's hint below.`);
    page.resultHolder.append(renderTestResult(result, page.type));
  } catch (e) {
    if (stillOn(page.seq)) reportRequestError(page, e, 'test');
  } finally {
    testButton.textContent = 'Test Connection';
    testButton.removeAttribute('aria-busy');
    busy(page, false);
  }
}

const dateInputToRfc3339 = (date) => (date ? `${date}T00:00:00Z` : null);

function createBody(page) {
  const { controls, type } = page;
  const body = { name: value(controls.name), provider_type: type.provider_type };
  for (const [name, v] of Object.entries(connectionValues(page))) if (v) body[name] = v;
  if (controls.sync_incidents.checked) body.sync_incidents = true;
  const expires = dateInputToRfc3339(controls.client_secret_expires_at.value);
  if (expires) body.client_secret_expires_at = expires;
  return body;
}

/** Only what changed; a rotated secret always says its expiry (null: none). */
function patchBody(page) {
  const { controls, existing } = page;
  const body = {};
  if (value(controls.name) !== existing.name) body.name = value(controls.name);
  for (const [name, v] of Object.entries(connectionValues(page))) {
    if (name === 'client_secret' ? v : v !== existing[name]) body[name] = v;
  }
  if (controls.sync_incidents.checked !== Boolean(existing.sync_incidents)) body.sync_incidents = controls.sync_incidents.checked;
  const before = existing.client_secret_expires_at ? String(existing.client_secret_expires_at).slice(0, 10) : '';
  const date = controls.client_secret_expires_at.value;
  if (body.client_secret || date !== before) body.client_secret_expires_at = dateInputToRfc3339(date);
  return body;
}

async function save(page) {
  clearFieldErrors(page.form);
  showFormError(page, '');
  if (!checkRequired(page, { forTest: false })) return;
  const { existing, id, saveButton, status, controls } = page;
  const body = existing ? patchBody(page) : createBody(page);
  if (existing && !Object.keys(body).length) {
    status.info('Nothing changed.');
    return;
  }
  if (page.lastTest && page.lastTest.status !== 'healthy') {
    const failed = (page.lastTest.checks || []).filter((c) => c.status === 'failed').map((c) => c.name);
    const confirmed = await confirmAction({
      title: 'Save a provider whose test failed?',
      body: [h('p', { class: 'notice notice-warn', testid: 'confirm-failing-save' },
        `The last connection test failed${failed.length ? ` (${failed.join(', ')})` : ''}. Saved as it is, the provider will show in error until its connection works.`)],
      ok: 'Save anyway',
    });
    if (!confirmed) return;
  }
  busy(page, true);
  saveButton.textContent = 'Saving…';
  status.busy('Saving…');
  try {
    const saved = existing
      ? await api('PATCH', `${PROVIDERS}/${encodeURIComponent(id)}`, body)
      : await api('POST', PROVIDERS, body);
    // Never keep a secret in the page once it is stored.
    if (controls.client_secret) controls.client_secret.value = '';
    if (!stillOn(page.seq)) return;
    // The list then shows the saved connection's real health, not "never tested".
    status.busy('Saved. Testing the saved connection…');
    const tested = await api('POST', `${PROVIDERS}/${encodeURIComponent(saved.id)}/test`).catch(() => null);
    if (!stillOn(page.seq)) return;
    const verdict = !tested ? ' Its connection could not be tested now; use Test on its row.'
      : tested.status === 'healthy' ? ' Its connection test passed.'
        : ' Its connection test failed: it shows in error until the connection works.';
    setFlash(tested && tested.status !== 'healthy' ? 'error' : 'ok', (existing
      ? `Saved “${saved.name}”.${body.client_secret ? ' The client secret was rotated.' : ''}`
      : `Added “${saved.name}”.${saved.is_default ? ' It is the default provider.' : ''}`) + verdict);
    window.location.hash = LIST;
  } catch (e) {
    if (stillOn(page.seq)) reportRequestError(page, e, 'save');
  } finally {
    saveButton.textContent = existing ? 'Save changes' : 'Save';
    busy(page, false);
  }
}
