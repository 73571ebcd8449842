// SoCMate API reference: renders this server's OpenAPI 3.1 document (/api/openapi.json) as a
// readable page at /api/docs.
//
// Plain ES module, no build step, no dependencies, nothing loaded from elsewhere. Every piece of
// the document reaches the DOM through textContent or attribute setters (never innerHTML), so no
// text in the specification can run as HTML. Descriptions get a tiny, safe subset of Markdown:
// paragraphs, bullet and numbered lists, fenced code and `code` spans.

import { $, append, clear, h } from '/console/dom.js';

const SPEC_URL = '/api/openapi.json';
const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'trace'];
const METHOD_BADGE = {
  get: 'badge sev-low',
  post: 'badge badge-ok',
  put: 'badge badge-warn',
  patch: 'badge badge-warn',
  delete: 'badge badge-bad',
};
/** Nesting limit for schemas (cycles are caught by reference; this caps merely deep ones). */
const MAX_DEPTH = 12;

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

function plural(n, one, many) {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** A value from the document shown as code: strings as they are, everything else as JSON. */
function literal(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Joins nodes with a separator text. */
function joinNodes(nodes, separator = ', ') {
  const out = [];
  nodes.forEach((node, i) => {
    if (i > 0) out.push(separator);
    out.push(node);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Status

function setStatus(kind, message, extra) {
  const el = $('#docs-status');
  clear(el);
  el.className = 'status-area';
  delete el.dataset.kind;
  if (!message) return;
  el.classList.add(`status-${kind}`);
  el.dataset.kind = kind;
  // Errors are announced at once; progress politely.
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  if (kind === 'busy') el.append(h('span', { class: 'spinner', 'aria-hidden': 'true' }));
  el.append(h('span', { text: message }));
  if (extra) el.append(extra);
}

// ---------------------------------------------------------------------------------------------
// Safe text: a small Markdown subset built from DOM nodes

/** Inline text with `code` spans. */
function inline(text) {
  const parts = String(text).split(/(`[^`\n]+`)/);
  return parts.filter((p) => p !== '').map((part) => (
    part.length > 2 && part.startsWith('`') && part.endsWith('`')
      ? h('code', { text: part.slice(1, -1) })
      : document.createTextNode(part)));
}

const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d+[.)]\s+(.*)$/;

/**
 * Renders a description: paragraphs, lists and fenced code, all as text nodes. With `compact`
 * (a tag name), a description that is one plain paragraph becomes that one element, without
 * the paragraph margins (for table cells and field lists).
 */
function textBlock(text, { className = '', testid, compact } = {}) {
  const lines = typeof text === 'string' ? text.replace(/\r\n?/g, '\n').trim().split('\n') : [];
  const plain = lines.every((line) => line.trim() && !BULLET.test(line) && !NUMBERED.test(line) && !/^\s*```/.test(line));
  if (compact && plain) {
    return h(compact, { class: className || null, testid }, inline(lines.map((l) => l.trim()).join(' ')));
  }
  const box = h('div', { class: className || null, testid });
  if (!lines.join('').trim()) return box;
  let paragraph = [];
  let list = null; // {el, ordered, last}
  let fence = null; // array of code lines while inside ``` … ```

  const flushParagraph = () => {
    if (paragraph.length) box.append(h('p', {}, inline(paragraph.join(' ').trim())));
    paragraph = [];
  };
  const flushList = () => {
    if (list) box.append(list.el);
    list = null;
  };

  for (const line of lines) {
    if (fence) {
      if (/^\s*```/.test(line)) {
        box.append(h('div', { class: 'table-wrap' }, h('pre', {}, h('code', { text: fence.join('\n') }))));
        fence = null;
      } else {
        fence.push(line);
      }
      continue;
    }
    if (/^\s*```/.test(line)) {
      flushParagraph();
      flushList();
      fence = [];
      continue;
    }
    if (!line.trim()) {
      flushParagraph();
      flushList();
      continue;
    }
    const bullet = line.match(BULLET);
    const numbered = bullet ? null : line.match(NUMBERED);
    if (bullet || numbered) {
      flushParagraph();
      const ordered = Boolean(numbered);
      if (list && list.ordered !== ordered) flushList();
      if (!list) list = { el: h(ordered ? 'ol' : 'ul'), ordered, last: null };
      list.last = h('li', {}, inline((bullet || numbered)[1]));
      list.el.append(list.last);
    } else if (list && /^\s+/.test(line)) {
      // An indented continuation of the last list item.
      list.last.append(' ', ...inline(line.trim()));
    } else {
      flushList();
      paragraph.push(line.trim());
    }
  }
  if (fence) box.append(h('div', { class: 'table-wrap' }, h('pre', {}, h('code', { text: fence.join('\n') }))));
  flushParagraph();
  flushList();
  return box;
}

// ---------------------------------------------------------------------------------------------
// References

let spec = null;

/** Resolves a local JSON pointer (`#/components/schemas/Name`); undefined if it goes nowhere. */
function resolvePointer(ref) {
  if (typeof ref !== 'string' || !ref.startsWith('#')) return undefined;
  let node = spec;
  const pointer = ref.slice(1);
  if (!pointer) return node;
  for (const raw of pointer.split('/').slice(1)) {
    let part;
    try {
      part = decodeURIComponent(raw);
    } catch {
      part = raw;
    }
    part = part.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !Object.prototype.hasOwnProperty.call(node, part)) {
      return undefined;
    }
    node = node[part];
  }
  return node;
}

function refName(ref) {
  const last = String(ref).split('/').pop() || String(ref);
  return last.replace(/~1/g, '/').replace(/~0/g, '~');
}

/**
 * Follows `$ref`s of a parameter, request body or response to the object itself (a few hops at
 * most). Sibling keys next to a `$ref` (3.1 allows `description` and `summary`) win.
 */
function deref(value) {
  let current = value;
  let name = null;
  const seen = new Set();
  while (isObject(current) && typeof current.$ref === 'string') {
    if (seen.has(current.$ref) || seen.size > 10) return { value: {}, name, broken: true };
    seen.add(current.$ref);
    name = name || refName(current.$ref);
    const { $ref, ...siblings } = current;
    const target = resolvePointer($ref);
    if (!isObject(target)) return { value: siblings, name, broken: true };
    current = { ...target, ...siblings };
  }
  return { value: isObject(current) ? current : {}, name, broken: false };
}

// ---------------------------------------------------------------------------------------------
// Schemas

function isNullSchema(schema) {
  if (!isObject(schema)) return false;
  if (typeof schema.$ref === 'string') {
    const target = resolvePointer(schema.$ref);
    return isObject(target) && typeof target.$ref !== 'string' && isNullSchema(target);
  }
  if (schema.type === 'null') return true;
  if (Array.isArray(schema.type) && schema.type.length === 1 && schema.type[0] === 'null') return true;
  if ('const' in schema && schema.const === null) return true;
  return Array.isArray(schema.enum) && schema.enum.length === 1 && schema.enum[0] === null;
}

function emptyInfo() {
  return {
    refName: null, // the components/schemas name, when the schema is a reference
    type: 'any', // a short type label: "string (uuid)", "array of Provider", "object", …
    nullable: false,
    recursive: false, // a reference back to a schema that encloses it
    broken: false, // a reference that resolves to nothing
    description: null,
    title: null,
    flags: [], // read-only, write-only, deprecated
    notes: [], // [{label, values: [..], code: bool}]: allowed values, pattern, default, ranges …
    properties: null, // [{name, required, info}] of an object (or of an array's items)
    variants: null, // [info] of a oneOf/anyOf with several non-null members
    variantKind: null, // "one of" or "any of"
  };
}

/** The label a schema gets where it is named inside another one ("array of X"). */
function labelOf(info) {
  const base = info.refName || info.type;
  return info.nullable ? `${base} or null` : base;
}

/** Collects what a schema says into a flat description (see emptyInfo). */
function analyze(raw, seen = new Set(), depth = 0) {
  const out = emptyInfo();
  if (raw === false) {
    out.type = 'nothing (no value is valid)';
    return out;
  }
  if (!isObject(raw)) return out;
  let schema = raw;

  if (typeof schema.$ref === 'string') {
    const { $ref, ...siblings } = schema;
    const name = refName($ref);
    const target = resolvePointer($ref);
    if (!isObject(target) && target !== true && target !== false) {
      out.refName = name;
      out.broken = true;
      out.type = `unresolved reference ${$ref}`;
      out.description = siblings.description || null;
      return out;
    }
    if (seen.has($ref) || depth > MAX_DEPTH) {
      out.refName = name;
      out.recursive = true;
      out.type = isObject(target) && typeof target.type === 'string' ? target.type : 'object';
      out.description = siblings.description || null;
      out.nullable = Array.isArray(siblings.type) && siblings.type.includes('null');
      return out;
    }
    const inner = analyze(isObject(target) ? { ...target, ...siblings } : target,
      new Set([...seen, $ref]), depth + 1);
    inner.refName = name;
    return inner;
  }

  // A oneOf/anyOf of one real schema and null is just a nullable schema.
  const choiceKey = Array.isArray(schema.oneOf) ? 'oneOf' : Array.isArray(schema.anyOf) ? 'anyOf' : null;
  let choices = null;
  let choiceNullable = false;
  if (choiceKey) {
    const { [choiceKey]: members, ...rest } = schema;
    const nonNull = members.filter((m) => !isNullSchema(m));
    choiceNullable = nonNull.length < members.length;
    if (nonNull.length === 1 && !('properties' in rest) && !('type' in rest && rest.type !== 'null')) {
      const only = nonNull[0];
      const merged = isObject(only) ? { ...only, ...rest } : only;
      const info = analyze(merged, seen, depth);
      info.nullable = info.nullable || choiceNullable;
      return info;
    }
    schema = rest;
    choices = { members: nonNull, kind: choiceKey === 'oneOf' ? 'one of' : 'any of' };
  }

  // allOf with a single member (common for "a reference plus a description"): that member.
  if (Array.isArray(schema.allOf) && schema.allOf.length === 1 && !choices && !('properties' in schema)) {
    const { allOf, ...rest } = schema;
    const only = allOf[0];
    return analyze(isObject(only) ? { ...only, ...rest } : only, seen, depth);
  }

  out.description = typeof schema.description === 'string' ? schema.description : null;
  out.title = typeof schema.title === 'string' ? schema.title : null;
  if (schema.readOnly === true) out.flags.push('read-only');
  if (schema.writeOnly === true) out.flags.push('write-only');
  if (schema.deprecated === true) out.flags.push('deprecated');

  let types = Array.isArray(schema.type) ? schema.type.slice() : typeof schema.type === 'string' ? [schema.type] : [];
  if (types.includes('null')) {
    out.nullable = true;
    types = types.filter((t) => t !== 'null');
  }
  if (schema.nullable === true) out.nullable = true; // OpenAPI 3.0 style
  if (choiceNullable) out.nullable = true;

  // Allowed values and other constraints.
  if (Array.isArray(schema.enum)) {
    const values = schema.enum.filter((v) => v !== null);
    if (values.length < schema.enum.length) out.nullable = true;
    out.notes.push({ label: 'Allowed values', values: values.map(literal), code: true });
    if (!types.length && values.length) types = [...new Set(values.map((v) => (Number.isInteger(v) ? 'integer' : typeof v)))];
  }
  if ('const' in schema) {
    if (schema.const === null) out.nullable = true;
    else {
      out.notes.push({ label: 'Always', values: [literal(schema.const)], code: true });
      if (!types.length) types = [typeof schema.const];
    }
  }
  if (typeof schema.pattern === 'string') out.notes.push({ label: 'Pattern', values: [schema.pattern], code: true });
  const range = rangeText(schema);
  if (range) out.notes.push({ label: 'Range', values: [range], code: false });
  const length = boundsText(schema.minLength, schema.maxLength, 'character', 'characters');
  if (length) out.notes.push({ label: 'Length', values: [length], code: false });
  const count = boundsText(schema.minItems, schema.maxItems, 'item', 'items');
  if (count) out.notes.push({ label: 'Items', values: [count + (schema.uniqueItems ? ', all different' : '')], code: false });
  if ('default' in schema) out.notes.push({ label: 'Default', values: [literal(schema.default)], code: true });
  const examples = Array.isArray(schema.examples) ? schema.examples : 'example' in schema ? [schema.example] : [];
  if (examples.length) out.notes.push({ label: examples.length === 1 ? 'Example' : 'Examples', values: examples.map(literal), code: true });

  // Object fields, including those merged from allOf members.
  if (isObject(schema.properties) || Array.isArray(schema.allOf)) {
    const fields = new Map();
    const addFields = (properties, required) => {
      for (const field of properties || []) {
        const before = fields.get(field.name);
        fields.set(field.name, { ...field, required: field.required || Boolean(before && before.required) || required.has(field.name) });
      }
    };
    const names = [];
    for (const member of Array.isArray(schema.allOf) ? schema.allOf : []) {
      const info = analyze(member, seen, depth + 1);
      if (info.refName) names.push(info.refName);
      if (!out.description && info.description) out.description = info.description;
      addFields(info.properties, new Set());
      if (info.variants && !choices) {
        out.variants = info.variants;
        out.variantKind = info.variantKind;
      }
    }
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    const own = Object.entries(isObject(schema.properties) ? schema.properties : {}).map(([name, sub]) => ({
      name, required: required.has(name), info: analyze(sub, seen, depth + 1),
    }));
    addFields(own, required);
    // `required` may name fields that only allOf members define.
    for (const [name, field] of fields) if (required.has(name)) fields.set(name, { ...field, required: true });
    out.properties = [...fields.values()];
    if (!types.length) types = ['object'];
    if (names.length) out.title = out.title || `all of ${names.join(', ')}`;
  }

  let typeLabel = null;
  if (types.includes('array') || (!types.length && 'items' in schema)) {
    const items = analyze(schema.items, seen, depth + 1);
    typeLabel = `array of ${labelOf(items)}`;
    if (!out.properties && items.properties) out.properties = items.properties;
    if (!out.variants && items.variants) {
      out.variants = items.variants;
      out.variantKind = items.variantKind;
    }
    for (const note of items.notes) out.notes.push({ ...note, label: `Each item: ${note.label.toLowerCase()}` });
    if (items.recursive) out.recursive = true;
    types = types.filter((t) => t !== 'array');
  }

  if (isObject(schema.additionalProperties) && Object.keys(schema.additionalProperties).length) {
    const values = analyze(schema.additionalProperties, seen, depth + 1);
    const mapLabel = `map of string to ${labelOf(values)}`;
    if (!out.properties || !out.properties.length) {
      typeLabel = typeLabel ? `${typeLabel} or ${mapLabel}` : mapLabel;
      types = types.filter((t) => t !== 'object');
      if (values.properties) out.properties = values.properties;
    } else {
      out.notes.push({ label: 'Other fields', values: [labelOf(values)], code: false });
    }
  } else if (schema.additionalProperties === true && types.includes('object') && !out.properties) {
    typeLabel = 'object (any fields)';
    types = types.filter((t) => t !== 'object');
  }

  if (choices) {
    out.variants = choices.members.map((member) => analyze(member, seen, depth + 1));
    out.variantKind = choices.kind;
    if (!types.length && !typeLabel) typeLabel = out.variants.map(labelOf).join(' or ') || choices.kind;
  }

  const format = typeof schema.format === 'string' ? schema.format : null;
  const labels = types.map((t) => (format && t !== 'object' ? `${t} (${format})` : t));
  if (typeLabel) labels.push(typeLabel);
  if (!labels.length && format) labels.push(`any (${format})`);
  out.type = labels.length ? labels.join(' or ') : 'any';
  if (isObject(schema.discriminator) && typeof schema.discriminator.propertyName === 'string') {
    out.notes.push({ label: 'Variant chosen by field', values: [schema.discriminator.propertyName], code: true });
  }
  return out;
}

function rangeText(schema) {
  const low = typeof schema.exclusiveMinimum === 'number' ? `> ${schema.exclusiveMinimum}`
    : typeof schema.minimum === 'number' ? `≥ ${schema.minimum}` : null;
  const high = typeof schema.exclusiveMaximum === 'number' ? `< ${schema.exclusiveMaximum}`
    : typeof schema.maximum === 'number' ? `≤ ${schema.maximum}` : null;
  const parts = [low, high].filter(Boolean);
  let text = parts.join(' and ');
  if (typeof schema.multipleOf === 'number') text = text ? `${text}, multiple of ${schema.multipleOf}` : `multiple of ${schema.multipleOf}`;
  return text || null;
}

function boundsText(min, max, one, many) {
  const lo = Number.isInteger(min) ? min : null;
  const hi = Number.isInteger(max) ? max : null;
  if (lo === null && hi === null) return null;
  if (lo !== null && hi !== null) return lo === hi ? plural(lo, one, many) : `${lo}–${hi} ${many}`;
  if (lo !== null) return `at least ${plural(lo, one, many)}`;
  return `at most ${plural(hi, one, many)}`;
}

// ---- Rendering schemas

function smallBadge(kind, text) {
  return h('span', { class: `badge badge-small badge-${kind}`, text });
}

/** The badges and type label shown after a field name (or a schema heading). */
function typeParts(info) {
  const parts = [];
  if (info.refName) {
    parts.push(h('code', { text: info.refName }));
    const detail = info.recursive ? `${info.type}, recursive` : info.type;
    if (detail && detail !== info.refName) parts.push(' ', h('span', { class: 'muted', text: `(${detail})` }));
  } else {
    parts.push(h('span', { class: 'muted', text: info.recursive ? `${info.type} (recursive)` : info.type }));
  }
  if (info.nullable) parts.push(smallBadge('neutral', 'nullable'));
  for (const flag of info.flags) parts.push(smallBadge(flag === 'deprecated' ? 'warn' : 'neutral', flag));
  if (info.broken) parts.push(smallBadge('bad', 'broken reference'));
  return parts;
}

function notesNodes(info) {
  return info.notes.map((note) => h('p', { class: 'hint' },
    `${note.label}: `,
    joinNodes(note.values.map((v) => (note.code ? h('code', { text: v }) : document.createTextNode(v))))));
}

/** The nested parts of a schema: its fields and its variants. */
function schemaChildren(info) {
  const nodes = [];
  if (info.properties && info.properties.length && !info.recursive) nodes.push(fieldList(info.properties));
  if (info.variants && info.variants.length && !info.recursive) {
    nodes.push(h('p', { class: 'hint' }, `Exactly ${info.variantKind === 'any of' ? 'one or more' : 'one'} of:`));
    nodes.push(h('ol', {}, info.variants.map((variant) => h('li', { testid: 'schema-variant' },
      typeParts(variant),
      variant.title && !variant.refName ? h('span', { class: 'muted', text: ` ${variant.title}` }) : null,
      variant.description ? textBlock(variant.description, { className: 'hint', compact: 'p' }) : null,
      notesNodes(variant),
      schemaChildren(variant)))));
  }
  return nodes;
}

function fieldList(properties) {
  return h('ul', { testid: 'schema-fields' }, properties.map(({ name, required, info }) => h('li', {
    testid: 'schema-field', dataset: { name },
  },
  h('code', {}, h('strong', { text: name })),
  ' ',
  typeParts(info),
  required ? h('span', { class: 'required small', text: ' required' }) : null,
  info.description ? textBlock(info.description, { className: 'hint', compact: 'p' }) : null,
  notesNodes(info),
  schemaChildren(info))));
}

/** A whole schema: its name and type line, description, constraints, then its fields. */
function schemaBlock(schema, testid) {
  const info = analyze(schema);
  return h('div', { testid },
    h('p', {}, 'Schema: ', typeParts(info)),
    info.description ? textBlock(info.description, { className: 'hint', compact: 'p' }) : null,
    notesNodes(info),
    schemaChildren(info));
}

// ---------------------------------------------------------------------------------------------
// Security

function schemeText(scheme) {
  const type = scheme.type;
  if (type === 'http') {
    const name = String(scheme.scheme || '').toLowerCase();
    if (name === 'bearer') {
      const format = scheme.bearerFormat ? ` (${scheme.bearerFormat})` : '';
      return [`HTTP bearer token${format}: send `, h('code', { text: 'Authorization: Bearer <token>' }), '.'];
    }
    if (name === 'basic') return ['HTTP Basic authentication: send ', h('code', { text: 'Authorization: Basic …' }), '.'];
    return [`HTTP authentication, scheme `, h('code', { text: String(scheme.scheme || '?') }), '.'];
  }
  if (type === 'apiKey') {
    const where = { cookie: 'Cookie', header: 'Header', query: 'Query parameter' }[scheme.in] || `In ${scheme.in}`;
    return [`${where} `, h('code', { text: String(scheme.name || '?') }), '.'];
  }
  if (type === 'oauth2') {
    const flows = isObject(scheme.flows) ? Object.keys(scheme.flows) : [];
    return [`OAuth 2.0${flows.length ? ` (${flows.join(', ')} flow${flows.length === 1 ? '' : 's'})` : ''}.`];
  }
  if (type === 'openIdConnect') {
    return ['OpenID Connect, discovery document ', h('code', { text: String(scheme.openIdConnectUrl || '?') }), '.'];
  }
  if (type === 'mutualTLS') return ['Mutual TLS (a client certificate).'];
  return [`${type || 'Unknown'} authentication.`];
}

/** "A or B and C" for a security requirement list; "none" when it allows anonymous calls. */
function requirementText(requirements) {
  if (!Array.isArray(requirements)) return null;
  const named = requirements.filter((req) => isObject(req) && Object.keys(req).length);
  if (!named.length) return [h('strong', { text: 'none' }), ' (public)'];
  // An empty requirement among the alternatives means anonymous calls are allowed too.
  const anonymous = named.length < requirements.length;
  const alternatives = named.map((req) => h('span', {},
    joinNodes(Object.keys(req).map((n) => h('code', { text: n })), ' and ')));
  const text = joinNodes(alternatives, ' or ');
  return anonymous ? [...text, ' (optional)'] : text;
}

function renderSecurity() {
  const schemes = isObject(spec.components) && isObject(spec.components.securitySchemes)
    ? spec.components.securitySchemes : {};
  const names = Object.keys(schemes);
  const section = $('#security-section');
  const intro = clear($('#security-intro'));
  const list = clear($('#security-schemes'));
  const global = requirementText(spec.security);
  if (!names.length && !global) return;
  if (global) intro.append(h('p', { testid: 'security-default' }, 'Unless an operation says otherwise, it needs: ', global, '.'));
  for (const name of names) {
    const { value: scheme } = deref(schemes[name]);
    list.append(
      h('dt', { testid: 'security-scheme', dataset: { name } }, h('code', { text: name })),
      h('dd', {},
        h('p', {}, schemeText(scheme)),
        scheme.description ? textBlock(scheme.description, { className: 'muted' }) : null),
    );
  }
  list.hidden = !names.length;
  section.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Operations

/** The group of an operation: its first tag, or the path's first segment (after /api). */
function groupOf(op, path) {
  if (Array.isArray(op.tags) && op.tags.length && typeof op.tags[0] === 'string') return op.tags[0];
  const segments = path.split('/').filter(Boolean);
  if (segments[0] === 'api' && segments.length > 1) return `/api/${segments[1]}`;
  return segments.length ? `/${segments[0]}` : '/';
}

function anchorFor(method, path, op) {
  const base = typeof op.operationId === 'string' && op.operationId
    ? op.operationId : `${method}-${path}`;
  return `op-${base.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '')}`;
}

/** All operations in document order, with path-level parameters merged in. */
function collectOperations() {
  const ops = [];
  const used = new Set();
  for (const [path, rawItem] of Object.entries(isObject(spec.paths) ? spec.paths : {})) {
    const { value: item } = deref(rawItem);
    const shared = Array.isArray(item.parameters) ? item.parameters : [];
    for (const method of METHODS) {
      const op = item[method];
      if (!isObject(op)) continue;
      const params = new Map();
      for (const raw of [...shared, ...(Array.isArray(op.parameters) ? op.parameters : [])]) {
        const { value: param } = deref(raw);
        params.set(`${param.in}:${param.name}`, param);
      }
      let anchor = anchorFor(method, path, op);
      while (used.has(anchor)) anchor += '-';
      used.add(anchor);
      ops.push({
        method,
        path,
        op,
        anchor,
        params: [...params.values()],
        summary: typeof op.summary === 'string' ? op.summary : '',
        group: groupOf(op, path),
      });
    }
  }
  return ops;
}

function paramsTable(params) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data', testid: 'params-table' },
    h('thead', {}, h('tr', {},
      ['Name', 'In', 'Required', 'Schema', 'Description'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, params.map((param) => {
      let schema = param.schema;
      if (!schema && isObject(param.content)) {
        const first = Object.values(param.content)[0];
        schema = isObject(first) ? first.schema : undefined;
      }
      const info = analyze(schema);
      const required = param.in === 'path' || param.required === true;
      return h('tr', { testid: 'param', dataset: { name: String(param.name), in: String(param.in) } },
        h('th', { scope: 'row' }, h('code', { text: String(param.name) }),
          param.deprecated ? smallBadge('warn', 'deprecated') : null),
        h('td', { text: String(param.in || '') }),
        h('td', {}, required ? h('span', { class: 'required', text: 'required' }) : h('span', { class: 'muted', text: 'optional' })),
        h('td', {}, typeParts(info), notesNodes(info)),
        h('td', {},
          textBlock(param.description || info.description || '', { compact: 'span' }),
          param.example !== undefined ? h('p', { class: 'hint' }, 'Example: ', h('code', { text: literal(param.example) })) : null));
    }))));
}

function requestBodySection(raw) {
  const { value: body, name } = deref(raw);
  const content = isObject(body.content) ? body.content : {};
  return h('section', { testid: 'request-body' },
    h('h3', {}, 'Request body ',
      body.required ? h('span', { class: 'required small', text: 'required' }) : h('span', { class: 'muted small', text: 'optional' })),
    name ? h('p', { class: 'hint' }, 'Defined as ', h('code', { text: name }), '.') : null,
    body.description ? textBlock(body.description) : null,
    Object.entries(content).map(([type, media]) => h('div', { testid: 'request-content', dataset: { contentType: type } },
      h('p', {}, 'Content type: ', h('code', { text: type })),
      isObject(media) && media.schema !== undefined ? schemaBlock(media.schema, 'request-schema') : null)));
}

function responsesTable(responses) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data', testid: 'responses-table' },
    h('thead', {}, h('tr', {},
      ['Status', 'Description', 'Content type', 'Schema'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, Object.entries(responses).map(([status, raw]) => {
      const { value: response } = deref(raw);
      const content = isObject(response.content) ? Object.entries(response.content) : [];
      const headers = isObject(response.headers) ? Object.keys(response.headers) : [];
      const ok = /^[23]/.test(status);
      return h('tr', { testid: 'response', dataset: { status } },
        h('th', { scope: 'row' }, h('span', {
          class: `badge ${ok ? 'badge-ok' : /^[45]/.test(status) ? 'badge-bad' : 'badge-neutral'}`,
          text: status,
        })),
        h('td', {},
          textBlock(response.description || '', { compact: 'span' }),
          headers.length ? h('p', { class: 'hint' }, 'Headers: ', joinNodes(headers.map((n) => h('code', { text: n })))) : null),
        h('td', {}, content.length
          ? joinNodes(content.map(([type]) => h('code', { text: type })), h('br'))
          : h('span', { class: 'muted', text: 'no body' })),
        h('td', {}, content.length ? content.map(([type, media], i) => {
          if (!isObject(media) || media.schema === undefined) return h('div', { class: 'muted', text: 'unspecified' });
          const info = analyze(media.schema);
          const children = schemaChildren(info);
          return h('div', { dataset: { contentType: type } },
            i > 0 ? h('br') : null,
            typeParts(info),
            children.length ? h('details', {}, h('summary', { text: info.variants && !info.properties ? 'Variants' : 'Fields' }),
              info.description ? textBlock(info.description, { className: 'hint', compact: 'p' }) : null,
              notesNodes(info),
              children) : notesNodes(info));
        }) : h('span', { class: 'muted', text: '—' })));
    }))));
}

function operationBody(entry) {
  const { op, params, method, path } = entry;
  const nodes = [];
  if (op.deprecated) nodes.push(h('p', { class: 'notice notice-warn', text: 'This operation is deprecated.' }));
  if (op.description) nodes.push(textBlock(op.description, { testid: 'operation-description' }));
  const security = requirementText(Array.isArray(op.security) ? op.security : spec.security);
  nodes.push(h('p', { class: 'small' },
    h('span', { class: 'muted', text: 'Authentication: ' }),
    security || h('span', { text: 'not stated' }),
    typeof op.operationId === 'string' ? [h('span', { class: 'muted', text: ' · Operation id: ' }), h('code', { text: op.operationId })] : null,
    h('span', { class: 'muted', text: ' · ' }),
    h('a', { href: `#${entry.anchor}`, text: 'Link to this operation', 'aria-label': `Link to ${method.toUpperCase()} ${path}` })));
  if (params.length) nodes.push(h('h3', { text: 'Parameters' }), paramsTable(params));
  if (op.requestBody) nodes.push(requestBodySection(op.requestBody));
  if (isObject(op.responses) && Object.keys(op.responses).length) {
    nodes.push(h('h3', { text: 'Responses' }), responsesTable(op.responses));
  }
  return nodes;
}

function operationItem(entry) {
  const { method, path, summary, op } = entry;
  const details = h('details', {
    class: 'check-body',
    id: entry.anchor,
    testid: 'operation',
    dataset: { method: method.toUpperCase(), path },
  },
  h('summary', { testid: 'operation-summary' },
    h('span', { class: METHOD_BADGE[method] || 'badge badge-neutral', text: method.toUpperCase() }),
    ' ',
    h('strong', { text: path }),
    summary ? ` — ${summary}` : '',
    op.deprecated ? [' ', smallBadge('warn', 'deprecated')] : null),
  operationBody(entry));
  const li = h('li', { class: 'check', testid: 'operation-item' }, details);
  entry.li = li;
  entry.details = details;
  entry.haystack = [method, path, summary, op.operationId || '', entry.group].join(' ').toLowerCase();
  return li;
}

let operations = [];
let groups = [];

function renderOperations() {
  operations = collectOperations();
  const tagInfo = new Map();
  for (const tag of Array.isArray(spec.tags) ? spec.tags : []) {
    if (isObject(tag) && typeof tag.name === 'string') tagInfo.set(tag.name, tag);
  }
  // Groups in the order of the document's tag list, then in order of first use.
  const order = [...tagInfo.keys()];
  for (const entry of operations) if (!order.includes(entry.group)) order.push(entry.group);
  const container = clear($('#operation-groups'));
  groups = [];
  order.forEach((name, index) => {
    const members = operations.filter((entry) => entry.group === name);
    if (!members.length) return;
    const tag = tagInfo.get(name);
    const headingId = `group-${index}`;
    const section = h('section', { 'aria-labelledby': headingId, testid: 'operation-group', dataset: { group: name } },
      h('h2', { id: headingId, text: name }),
      tag && tag.description ? textBlock(tag.description, { className: 'muted' }) : null,
      h('div', { class: 'card' }, h('ul', { class: 'checks' }, members.map(operationItem))));
    groups.push({ section, members });
    container.append(section);
  });
  $('#operations-section').hidden = false;
  applyFilter();
}

function applyFilter() {
  const words = $('#op-filter').value.toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const entry of operations) {
    const match = words.every((w) => entry.haystack.includes(w));
    entry.li.hidden = !match;
    if (match) shown += 1;
  }
  for (const group of groups) {
    const visible = group.members.some((entry) => !entry.li.hidden);
    group.section.hidden = !visible;
  }
  const total = operations.length;
  $('#op-filter-count').textContent = words.length
    ? `Showing ${shown} of ${plural(total, 'operation', 'operations')}.`
    : `${plural(total, 'operation', 'operations')}.`;
  $('#no-match').hidden = !(words.length && shown === 0);
}

/** Opens and scrolls to the operation named in the URL fragment, if any. */
function openFromHash() {
  const id = decodeURIComponent(window.location.hash.slice(1));
  if (!id.startsWith('op-')) return;
  const details = document.getElementById(id);
  if (!details || details.tagName !== 'DETAILS') return;
  details.open = true;
  const entry = operations.find((e) => e.details === details);
  if (entry && entry.li.hidden) {
    $('#op-filter').value = '';
    applyFilter();
  }
  details.scrollIntoView({ block: 'start' });
  details.querySelector('summary').focus({ preventScroll: true });
}

// ---------------------------------------------------------------------------------------------
// Loading

function renderInfo() {
  const info = isObject(spec.info) ? spec.info : {};
  const title = typeof info.title === 'string' && info.title ? info.title : 'API reference';
  $('#docs-title').textContent = title;
  document.title = `${title} — API reference`;
  const meta = clear($('#docs-meta'));
  append(meta, [
    info.version !== undefined ? [h('span', { class: 'badge badge-neutral', testid: 'docs-version', text: `Version ${info.version}` }), ' '] : null,
    h('span', { class: 'muted small', text: `OpenAPI ${spec.openapi}` }),
  ]);
  const description = clear($('#docs-description'));
  if (typeof info.description === 'string') description.append(textBlock(info.description, { className: 'lead' }));
}

function retryButton() {
  return h('button', { type: 'button', class: 'btn btn-small', testid: 'docs-retry', onclick: load }, 'Try again');
}

async function load() {
  setStatus('busy', 'Loading the API description…');
  let response;
  try {
    response = await fetch(SPEC_URL, { headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
  } catch {
    setStatus('error', 'The API description could not be loaded: the server could not be reached. ', retryButton());
    return;
  }
  let document_;
  try {
    const text = await response.text();
    document_ = text ? JSON.parse(text) : null;
  } catch {
    document_ = undefined;
  }
  if (!response.ok) {
    const detail = isObject(document_) && (document_.detail || document_.title);
    setStatus('error', `The API description could not be loaded (HTTP ${response.status}${detail ? `: ${detail}` : ''}). `, retryButton());
    return;
  }
  if (!isObject(document_) || typeof document_.openapi !== 'string' || !isObject(document_.paths)) {
    setStatus('error', `${SPEC_URL} did not return an OpenAPI document. `, retryButton());
    return;
  }
  spec = document_;
  try {
    renderInfo();
    renderSecurity();
    renderOperations();
  } catch (e) {
    console.error('rendering the OpenAPI document failed', e);
    setStatus('error', `The API description could not be shown: ${e.message}. `);
    return;
  }
  setStatus('', '');
  openFromHash();
}

function setAll(open) {
  for (const entry of operations) if (!entry.li.hidden) entry.details.open = open;
}

function init() {
  const filter = $('#op-filter');
  filter.addEventListener('input', applyFilter);
  filter.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && filter.value) {
      event.preventDefault();
      filter.value = '';
      applyFilter();
    }
  });
  $('#expand-all').addEventListener('click', () => setAll(true));
  $('#collapse-all').addEventListener('click', () => setAll(false));
  window.addEventListener('hashchange', openFromHash);
  load();
}

init();
