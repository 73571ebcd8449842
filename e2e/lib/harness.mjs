// Test harness: starts the Azure emulator and `socmate serve` on free loopback ports with a fresh
// data directory, creates an admin and an analyst, launches headless Chromium, and tears it all
// down again. Used by the tests in ../tests and by ../screenshots.mjs.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium, request as playwrightRequest } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const E2E_DIR = path.resolve(here, '..');
export const REPO_ROOT = path.resolve(E2E_DIR, '..');
export const OUTPUT_DIR = path.join(E2E_DIR, 'output');
const BIN_DIR = process.env.SOCMATE_BIN_DIR
  ? path.resolve(process.env.SOCMATE_BIN_DIR)
  : path.join(REPO_ROOT, 'target', 'debug');
const CHROMIUM = process.env.SOCMATE_E2E_CHROMIUM || '/usr/bin/chromium';

export const DEMO = Object.freeze({
  tenant: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  workspace: 'c0ffee00-0000-4000-8000-00000000beef',
  client: 'b1a3c5d7-0000-4000-8000-00000000a001',
  secret: 'demo-secret-value-1234',
  clientNoRoles: 'b1a3c5d7-0000-4000-8000-00000000a002',
  secretNoRoles: 'demo-secret-no-roles-5678',
});

export const USERS = Object.freeze({
  admin: { email: 'admin@example.com', password: 'e2e-admin-Passw0rd-long', role: 'admin' },
  analyst: { email: 'analyst@example.com', password: 'e2e-analyst-Passw0rd-long', role: 'analyst' },
});

export const VIEWPORT = Object.freeze({ width: 1366, height: 768 });

// Children still running when this process exits (a crashed test) are killed, never left over.
const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

function binary(name) {
  const file = path.join(BIN_DIR, name);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} does not exist: run \`cargo build --bins\` in ${REPO_ROOT} first, `
      + 'or point SOCMATE_BIN_DIR at the directory holding socmate and azure-emulator');
  }
  return file;
}

export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** Polls `fn` until it returns a truthy value or `timeout` ms pass. */
export async function waitUntil(fn, { timeout = 10_000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : last !== undefined ? ` (last: ${JSON.stringify(last)})` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${why}`);
    }
    await sleep(interval);
  }
}

function startProcess(label, file, args, { env, logFile }) {
  const log = fs.createWriteStream(logFile, { flags: 'a' });
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT });
  children.add(child);
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const exited = once(child, 'exit').then(([code, signal]) => {
    children.delete(child);
    log.end(`\n[${label} exited: code ${code}, signal ${signal}]\n`);
    return { code, signal };
  });
  return { child, exited, label, logFile };
}

async function stopProcess(proc) {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  let timer;
  const result = await Promise.race([
    proc.exited,
    new Promise((resolve) => { timer = setTimeout(() => resolve(null), 10_000); }),
  ]);
  clearTimeout(timer);
  if (!result) {
    proc.child.kill('SIGKILL');
    await proc.exited;
  }
}

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Runs `socmate user add` with the password on stdin (one line). */
async function addUser(socmate, env, dataDir, user, logFile) {
  const child = spawn(socmate, ['user', 'add', '--email', user.email, '--role', user.role, '--data-dir', dataDir], {
    env, stdio: ['pipe', 'pipe', 'pipe'], cwd: REPO_ROOT,
  });
  children.add(child);
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  child.stdin.end(`${user.password}\n`);
  const [code] = await once(child, 'exit');
  children.delete(child);
  await fsp.appendFile(logFile, `$ socmate user add --email ${user.email} --role ${user.role}\n${output}\n[exit ${code}]\n`);
  if (code !== 0) throw new Error(`socmate user add ${user.email} failed (exit ${code}):\n${output}`);
}

/**
 * Starts the emulator and SoCMate for one test file. `name` labels the logs
 * (output/logs/<name>-*.log). Returns {baseUrl, emulatorUrl, dataDir, stop()}.
 */
export async function startStack(name, { extraEnv = {} } = {}) {
  const socmate = binary('socmate');
  const emulatorBin = binary('azure-emulator');
  const logDir = path.join(OUTPUT_DIR, 'logs');
  await fsp.mkdir(logDir, { recursive: true });
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), `socmate-e2e-${name}-`));
  const emulatorLog = path.join(logDir, `${name}-emulator.log`);
  const socmateLog = path.join(logDir, `${name}-socmate.log`);
  await fsp.writeFile(emulatorLog, '');
  await fsp.writeFile(socmateLog, '');

  const procs = [];
  const stop = async () => {
    for (const proc of procs.reverse()) await stopProcess(proc);
    procs.length = 0;
    if (!process.env.SOCMATE_E2E_KEEP_DATA) await fsp.rm(dataDir, { recursive: true, force: true });
  };

  try {
    // The emulator picks its own port and prints `azure-emulator listening on http://…`.
    const baseEnv = { ...process.env };
    for (const key of Object.keys(baseEnv)) if (key.startsWith('SOCMATE_')) delete baseEnv[key];
    const emulator = startProcess('azure-emulator', emulatorBin,
      ['--config', path.join(REPO_ROOT, 'crates/azure-emulator/demo.json'), '--listen', '127.0.0.1:0'],
      { env: baseEnv, logFile: emulatorLog });
    procs.push(emulator);
    const emulatorUrl = await new Promise((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => reject(new Error(`azure-emulator did not start in 20 s:\n${tail(emulatorLog)}`)), 20_000);
      const onData = (chunk) => {
        seen += chunk;
        const match = seen.match(/listening on (http:\/\/[^\s]+)/);
        if (match) {
          clearTimeout(timer);
          emulator.child.stdout.off('data', onData);
          resolve(match[1].replace(/\/$/, ''));
        }
      };
      emulator.child.stdout.on('data', onData);
      emulator.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`azure-emulator exited before listening:\n${tail(emulatorLog)}`));
      });
    });

    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const env = {
      ...baseEnv,
      SOCMATE_DATA_DIR: dataDir,
      SOCMATE_LISTEN: `127.0.0.1:${port}`,
      SOCMATE_AZURE_AUTHORITY_HOST: emulatorUrl,
      SOCMATE_AZURE_LOG_ANALYTICS_ENDPOINT: emulatorUrl,
      SOCMATE_AZURE_GRAPH_ENDPOINT: emulatorUrl,
      SOCMATE_SYNC_FIRST_WINDOW_DAYS: '365',
      // Each test signs in several times from 127.0.0.1; the default limits are for people.
      SOCMATE_SIGN_IN_RATE: '1000',
      SOCMATE_WRITE_RATE: '10000',
      RUST_LOG: process.env.RUST_LOG || 'info',
      ...extraEnv,
    };
    const server = startProcess('socmate', socmate, ['serve'], { env, logFile: socmateLog });
    procs.push(server);
    let exited = false;
    server.exited.then(() => { exited = true; });
    await waitUntil(async () => {
      if (exited) throw new Error(`socmate serve exited:\n${tail(socmateLog)}`);
      const response = await fetch(`${baseUrl}/readyz`).catch(() => null);
      return response && response.ok;
    }, { timeout: 30_000, message: `socmate /readyz on ${baseUrl}` }).catch((e) => {
      throw new Error(`${e.message}\n--- socmate log ---\n${tail(socmateLog)}`);
    });

    for (const user of Object.values(USERS)) await addUser(socmate, env, dataDir, user, socmateLog);

    return { baseUrl, emulatorUrl, dataDir, env, logs: { emulator: emulatorLog, socmate: socmateLog }, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} does not exist: install it with \`apt-get install -y chromium chromium-driver\``);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
  });
}

/**
 * A fresh browser context (no cookies) and page at 1366x768. Console errors, page errors and
 * CSP violations are collected in `problems` so tests can assert the page ran cleanly.
 */
export async function newPage(browser, stack) {
  const context = await browser.newContext({ viewport: VIEWPORT, baseURL: stack.baseUrl });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    // Expected failed API calls (401 before sign-in, 4xx a test provokes) are not page problems.
    if (/Failed to load resource: the server responded with a status of (4\d\d)/.test(text)) return;
    problems.push(`console: ${text}`);
  });
  return { context, page, problems };
}

export function safeName(name) {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80) || 'test';
}

/** Saves a full-page screenshot to output/<test-name>.png. */
export async function screenshot(page, name) {
  await fsp.mkdir(OUTPUT_DIR, { recursive: true });
  const file = path.join(OUTPUT_DIR, `${safeName(name)}.png`);
  try {
    await page.screenshot({ path: file, fullPage: true });
  } catch (e) {
    process.stderr.write(`screenshot ${file} failed: ${e.message}\n`);
  }
  return file;
}

/** Signs in through the form and waits for the signed-in header. */
export async function signIn(page, user) {
  await page.goto('/');
  await page.getByTestId('login-form').waitFor();
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('user-email').filter({ hasText: user.email }).waitFor();
}

/** An API client signed in through /api/auth/login (cookie session, CSRF header on every call). */
export async function apiSession(stack, user) {
  const api = await playwrightRequest.newContext({
    baseURL: stack.baseUrl,
    extraHTTPHeaders: { 'X-Requested-With': 'SoCMate', Accept: 'application/json' },
  });
  const response = await api.post('/api/auth/login', { data: { email: user.email, password: user.password } });
  if (response.status() !== 200) {
    throw new Error(`API sign-in of ${user.email} failed: ${response.status()} ${await response.text()}`);
  }
  return api;
}

export async function createProvider(api, body) {
  const response = await api.post('/api/admin/siem-providers', {
    data: {
      provider_type: 'sentinel',
      workspace_id: DEMO.workspace,
      tenant_id: DEMO.tenant,
      client_id: DEMO.client,
      client_secret: DEMO.secret,
      ...body,
    },
  });
  if (response.status() !== 201) {
    throw new Error(`creating provider failed: ${response.status()} ${await response.text()}`);
  }
  return response.json();
}

/** Waits until a provider's incident sync has finished successfully at least once. */
export async function waitForSync(api, providerId, { timeout = 30_000 } = {}) {
  return waitUntil(async () => {
    const response = await api.get(`/api/admin/siem-providers/${providerId}/sync`);
    if (!response.ok()) return false;
    const status = await response.json();
    if (status.last_error && status.state === 'idle' && !status.last_success_at) {
      throw new Error(`sync failed: ${JSON.stringify(status.last_error)}`);
    }
    return status.state === 'idle' && status.last_success_at ? status : false;
  }, { timeout, interval: 250, message: `incident sync of ${providerId}` });
}

/** Adds a fault to the emulator (see crates/azure-emulator/src/faults.rs). */
export async function injectFault(stack, fault) {
  const response = await fetch(`${stack.emulatorUrl}/_emulator/faults`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(fault),
  });
  if (response.status !== 204) throw new Error(`fault injection failed: ${response.status} ${await response.text()}`);
}

export async function clearFaults(stack) {
  await fetch(`${stack.emulatorUrl}/_emulator/faults`, { method: 'DELETE' });
}

/** Waits until `locator`'s text matches `pattern`; returns the text. */
export async function waitForText(locator, pattern, timeout = 15_000) {
  return waitUntil(async () => {
    const text = await locator.textContent({ timeout: 1_000 }).catch(() => null);
    return text !== null && pattern.test(text) ? text : false;
  }, { timeout, message: `text matching ${pattern}` });
}

/** Waits until `locator` matches exactly `count` elements. */
export async function waitForCount(locator, count, timeout = 15_000) {
  return waitUntil(async () => (await locator.count()) === count, {
    timeout, message: `${count} matching elements`,
  });
}

const AXE_SOURCE = fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

/**
 * Runs axe-core (WCAG 2.x A and AA rules) on the page as it is; returns the violations whose
 * impact is serious or critical, each as "rule: target (summary)".
 */
export async function seriousA11yViolations(page) {
  await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate(async () => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')} (${n.failureSummary.split('\n').slice(1).join(' ').trim()})`));
}
