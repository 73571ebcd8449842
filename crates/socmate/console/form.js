// Form fields: a label, the control, its "where to find it" hint and an error slot, and the
// placing of a 422's field errors next to their fields.

import { h } from '/console/dom.js';

/** A labelled control; `info` is `{label, hint}`. */
export function field(name, control, info, { required = false } = {}) {
  const hintId = `hint-${name}`;
  const errorId = `error-${name}`;
  control.id = control.id || `field-${name}`;
  control.name = name;
  control.dataset.testid = control.dataset.testid || `field-${name}`;
  control.setAttribute('aria-describedby', `${hintId} ${errorId}`);
  if (required) control.setAttribute('aria-required', 'true');
  const isCheckbox = control.type === 'checkbox';
  const label = h('label', { for: control.id },
    info.label, required ? h('span', { class: 'required', 'aria-hidden': 'true', text: ' *' }) : null);
  return h('div', { class: `field${isCheckbox ? ' field-check' : ''}`, dataset: { field: name } },
    isCheckbox ? h('div', { class: 'check-row' }, control, label) : [label, control],
    h('p', { class: 'hint', id: hintId, testid: `hint-${name}`, text: info.hint }),
    h('p', { class: 'field-error', id: errorId, testid: `error-${name}`, hidden: true }));
}

export function setFieldError(form, name, message) {
  const slot = form.querySelector(`#error-${name}`);
  const control = form.querySelector(`[name="${name}"]`);
  if (!slot) return false;
  slot.textContent = message;
  slot.hidden = !message;
  if (control) {
    if (message) control.setAttribute('aria-invalid', 'true');
    else control.removeAttribute('aria-invalid');
  }
  return true;
}

export function clearFieldErrors(form) {
  for (const slot of form.querySelectorAll('.field-error')) {
    slot.textContent = '';
    slot.hidden = true;
  }
  for (const control of form.querySelectorAll('[aria-invalid]')) control.removeAttribute('aria-invalid');
}

/** Shows 422 field errors next to their fields; returns the messages that had no field. */
export function showFieldErrors(form, errors) {
  const unplaced = [];
  let first = null;
  for (const e of errors) {
    const name = e.field || '';
    if (setFieldError(form, name, e.message)) {
      first = first || form.querySelector(`[name="${name}"]`);
    } else {
      unplaced.push(e.message);
    }
  }
  if (first) first.focus();
  return unplaced;
}
