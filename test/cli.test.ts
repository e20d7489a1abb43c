/**
 * SPEC §8: the real `keygate` binary against Postgres, with a reference app on the same database
 * (and a private Redis, so the CLI's rotations and revocations reach the app's cache).
 * Steps share state and run in order; independent invocations run side by side. Each process
 * costs about two seconds of CPU (tsx and module loading), so variants of one output format go
 * through the same `run()` in this process: `bin.ts` only hands `run()`'s result to `exitCode`.
 */
import { run } from 'keygate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import {
  type AppProcess,
  type CliResult,
  runCli,
  startAppProcess,
  stopAppProcesses,
} from './support/processes.js';
import { type RedisServer, startRedisServer } from './support/redis.js';

let database: TestDatabase;
let redis: RedisServer;
let app: AppProcess | undefined;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  // Empty: `keygate migrate` is the first step.
  [database, redis] = await Promise.all([
    createTestDatabase({ migrate: false }),
    startRedisServer(),
  ]);
  env = { DATABASE_URL: database.url, REDIS_URL: redis.url };
});

afterAll(async () => {
  await stopAppProcesses();
  await Promise.allSettled([redis?.kill(), database?.close()]);
});

/** `keygate ...` in this process, with the same output and exit code as the binary. */
async function runHere(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    out: (text) => {
      stdout += text;
    },
    err: (text) => {
      stderr += text;
    },
    env: { ...env, ...extraEnv },
  });
  return { code, stdout, stderr };
}

/** The one JSON object `--json` prints, and nothing else. */
// biome-ignore lint/suspicious/noExplicitAny: CLI output is asserted field by field
function onlyJson(result: CliResult): any {
  expect(result.stdout.trimEnd().split('\n')).toHaveLength(1);
  const parsed = JSON.parse(result.stdout);
  expect(parsed).toBeTypeOf('object');
  return parsed;
}

async function status(path: string, secret: string): Promise<{ status: number; code?: string }> {
  const response = await fetch(`${app!.origin}${path}`, { headers: { 'x-api-key': secret } });
  const body = (await response.json()) as { code?: string };
  return { status: response.status, code: body.code };
}

/** The app answers `expected` within a second (the CLI announced the change over Redis). */
async function soon(path: string, secret: string, expected: number): Promise<void> {
  const deadline = performance.now() + 1_000;
  let last = await status(path, secret);
  while (last.status !== expected && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    last = await status(path, secret);
  }
  expect(last.status).toBe(expected);
}

const W1 = '/v1/websites/w_1/analytics';

// Under a loaded machine a handful of processes started at once take a while.
describe('keygate CLI', { timeout: 90_000 }, () => {
  let key: { id: string; secret: string; start: string };
  let flagged: { id: string; secret: string };
  const expires = new Date(Date.now() + 30 * 86_400_000).toISOString();

  it('migrates; refuses bad arguments with exit code 2; documents every command', async () => {
    const [migrated, help, unknownFlag, noName, badRate, badGrace, unknownCommand] =
      await Promise.all([
        runCli(['migrate'], env),
        runCli(['--help'], env),
        runCli(['keys', 'list', '--bogus'], env),
        runCli(['keys', 'create', '--scopes', 'read:data'], env),
        runCli(['keys', 'create', '--name', 'n', '--scopes', 'read:data', '--rate', 'abc'], env),
        runHere(['keys', 'rotate', 'key_x', '--grace', 'soon']),
        runHere(['keys', 'frobnicate']),
      ]);
    expect(migrated).toMatchObject({ code: 0, stderr: '' });
    expect(migrated.stdout).toMatch(/^Applied [1-9]\d* migration\(s\)\.\n$/);
    const tables =
      await database.sql`select tablename from pg_tables where tablename like 'keygate_%'`;
    expect(tables.map((t) => t.tablename)).toEqual(
      expect.arrayContaining(['keygate_api_keys', 'keygate_audit_events', 'keygate_migrations']),
    );

    expect(help.code).toBe(0);
    expect(help.stderr).toBe('');
    for (const text of [
      'keygate migrate',
      'keygate keys create',
      'keygate keys list',
      'keygate keys show ID',
      'keygate keys rotate ID',
      'keygate keys revoke ID',
      'keygate audit',
      'keygate usage KEY',
      '--range 24h|7d|30d',
      ...['--name', '--scopes', '--owner', '--type secret|public', '--env live|test'],
      ...['--resource', '--expires', '--rate', '--burst', '--daily', '--allow-ip'],
      ...['--allow-referrer', '--allow-endpoint', '--json', '--grace', '--key', '--limit'],
      'DATABASE_URL',
      'REDIS_URL',
      'KEYGATE_PEPPER',
    ]) {
      expect(help.stdout).toContain(text);
    }

    const usage = "Run 'keygate --help' for usage.\n";
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toMatch(/^keygate: Unknown option '--bogus'/);
    expect(unknownFlag.stderr).toContain(usage);
    expect(noName).toMatchObject({ code: 2, stdout: '' });
    expect(noName.stderr).toBe(`keygate: keys create needs --name\n${usage}`);
    expect(badRate).toMatchObject({ code: 2, stdout: '' });
    expect(badRate.stderr).toBe(`keygate: --rate must be a positive number (got abc)\n${usage}`);
    expect(badGrace.code).toBe(2);
    expect(badGrace.stderr).toContain('--grace must be a whole number of seconds (got soon)');
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain("unknown command 'keys frobnicate'");
  });

  it('creates keys: the secret printed once', async () => {
    const [created, plain, withFlags, started] = await Promise.all([
      runCli(
        [
          ...['keys', 'create', '--name', 'reporting', '--scopes', 'read:data'],
          ...['--resource', 'website:w_1', '--json'],
        ],
        env,
      ),
      runHere(['keys', 'create', '--name', 'plain', '--scopes', 'read:data']),
      runCli(
        [
          ...['keys', 'create', '--name', 'browser', '--owner', 'org_cli', '--type', 'public'],
          ...['--env', 'test', '--scopes', 'track:events,read:config'],
          ...['--resource', 'website:w_1', '--resource', 'link:l_9', '--expires', expires],
          ...['--rate', '2.5', '--burst', '20', '--daily', '5000'],
          ...['--allow-ip', '10.0.0.0/8', '--allow-ip', '2001:db8::/32'],
          ...['--allow-referrer', 'https://*.example.com', '--allow-referrer', 'localhost:*'],
          ...['--allow-endpoint', 'POST /v1/events', '--allow-endpoint', 'GET /v1/**'],
          '--json',
        ],
        env,
      ),
      startAppProcess('hono', env),
    ]);
    app = started;

    expect(created.code).toBe(0);
    expect(created.stderr).toBe('');
    key = onlyJson(created);
    expect(key).toMatchObject({
      id: expect.stringMatching(/^key_/),
      secret: expect.stringMatching(/^sk_live_[0-9A-Za-z]{38}$/),
      start: expect.stringMatching(/^sk_live_/),
      name: 'reporting',
      ownerId: 'org_default',
      scopes: ['read:data'],
      resources: ['website:w_1'],
    });
    expect(key.secret.startsWith(key.start)).toBe(true);

    expect(plain.code).toBe(0);
    const secret = /secret: +(sk_live_\w+)/.exec(plain.stdout)?.[1];
    expect(secret).toMatch(/^sk_live_[0-9A-Za-z]{38}$/);
    expect(plain.stdout.split(secret!)).toHaveLength(2);
    expect(plain.stdout).toContain('Store the secret now: it is not shown again.');

    expect(withFlags.code).toBe(0);
    flagged = onlyJson(withFlags);
    expect(flagged.secret).toMatch(/^pk_test_/);
  });

  it('the created secret works over HTTP, within its resources', async () => {
    expect(await status(W1, key.secret)).toEqual({ status: 200 });
    expect(await status('/v1/websites/w_2/analytics', key.secret)).toEqual({
      status: 403,
      code: 'ACCESS_DENIED',
    });
  });

  it('lists and shows keys, never a secret; every create flag stored as given', async () => {
    const [list, listJson, show, shownFlagged, owned] = await Promise.all([
      runCli(['keys', 'list'], env),
      runCli(['keys', 'list', '--json'], env),
      runCli(['keys', 'show', key.id], env),
      runCli(['keys', 'show', flagged.id, '--json'], env),
      runHere(['keys', 'list', '--owner', 'org_cli', '--json']),
    ]);
    for (const result of [list, listJson, show, shownFlagged, owned]) {
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      for (const secret of [key.secret, flagged.secret]) {
        expect(result.stdout).not.toContain(secret.slice(14));
      }
    }
    expect(list.stdout).toContain(`${key.id}  ${key.start}…  secret/live  reporting  [read:data]`);
    const listed = onlyJson(listJson).keys as Array<Record<string, unknown>>;
    expect(listed.map((k) => k.id)).toEqual(expect.arrayContaining([key.id]));
    for (const entry of listed) {
      for (const field of ['secret', 'digest', 'previousDigest']) {
        expect(entry).not.toHaveProperty(field);
      }
    }
    expect(onlyJson(owned).keys.map((k: { id: string }) => k.id)).toEqual([flagged.id]);
    expect(show.stdout).toContain(`id:          ${key.id}\n`);
    expect(show.stdout).toContain('resources:   website:w_1\n');

    // Every create flag is stored as given.
    expect(shownFlagged.code).toBe(0);
    const stored = onlyJson(shownFlagged);
    expect(stored).toEqual({
      id: flagged.id,
      name: 'browser',
      ownerId: 'org_cli',
      type: 'public',
      environment: 'test',
      prefix: 'pk_test_',
      start: flagged.secret.slice(0, 14),
      scopes: ['track:events', 'read:config'],
      resources: ['website:w_1', 'link:l_9'],
      expiresAt: expires,
      rateLimit: { perSecond: 2.5, burst: 20, daily: 5000 },
      restrictions: {
        ips: ['10.0.0.0/8', '2001:db8::/32'],
        referrers: ['https://*.example.com', 'localhost:*'],
        endpoints: ['POST /v1/events', 'GET /v1/**'],
      },
      metadata: null,
      previousDigestExpiresAt: null,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
      lastUsedAt: null,
      revokedAt: null,
      leak: null,
    });
    expect(shownFlagged.stdout).not.toContain(flagged.secret.slice(14));
  });

  it('an unknown key exits 1', async () => {
    const [show, revoke, showJson] = await Promise.all([
      runCli(['keys', 'show', 'key_missing'], env),
      runHere(['keys', 'revoke', 'key_missing']),
      runHere(['keys', 'show', 'key_missing', '--json']),
    ]);
    expect(show).toEqual({ code: 1, stdout: '', stderr: 'keygate: API key not found\n' });
    expect(revoke).toEqual({ code: 1, stdout: '', stderr: 'keygate: API key not found\n' });
    expect(showJson.code).toBe(1);
    expect(onlyJson(showJson)).toEqual({ error: 'API key not found' });
  });

  it('a bad KEYGATE_REDIS_TIMEOUT_MS exits 1 before changing anything', async () => {
    const refused = await runHere(['keys', 'revoke', key.id], { KEYGATE_REDIS_TIMEOUT_MS: '2s' });
    expect(refused).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'keygate: [keygate:INVALID_OPTION] KEYGATE_REDIS_TIMEOUT_MS must be a whole number of milliseconds from 1 to 60000 (got 2s)\n',
    });
    expect(onlyJson(await runHere(['keys', 'show', key.id, '--json'])).revokedAt).toBeNull();
  });

  it('rotates: the new secret is printed once; the old one stops working', async () => {
    const rotated = await runCli(['keys', 'rotate', key.id, '--json'], env);
    expect(rotated.code).toBe(0);
    expect(rotated.stderr).toBe('');
    const issued = onlyJson(rotated);
    expect(issued).toMatchObject({ id: key.id, secret: expect.stringMatching(/^sk_live_/) });
    expect(issued.secret).not.toBe(key.secret);
    await soon(W1, key.secret, 401);
    expect(await status(W1, issued.secret)).toEqual({ status: 200 });

    const text = await runHere(['keys', 'rotate', key.id, '--grace', '60']);
    expect(text.code).toBe(0);
    const secret = /secret: +(sk_live_\w+)/.exec(text.stdout)?.[1];
    expect(text.stdout).toContain('the old secret works for 60 more seconds');
    expect(text.stdout.split(secret!)).toHaveLength(2);
    expect(await status(W1, issued.secret)).toEqual({ status: 200 });
    expect(await status(W1, secret!)).toEqual({ status: 200 });
    key.secret = secret!;
  });

  it('revokes: the key stops working', async () => {
    const revoked = await runCli(['keys', 'revoke', key.id], env);
    expect(revoked).toEqual({ code: 0, stdout: `Revoked ${key.id}.\n`, stderr: '' });
    await soon(W1, key.secret, 401);
    const shown = onlyJson(await runHere(['keys', 'show', key.id, '--json']));
    expect(shown.revokedAt).toEqual(expect.any(String));
  });

  it('prints the audit trail of a key', async () => {
    const audit = await runCli(['audit', '--key', key.id, '--json'], env);
    expect(audit.code).toBe(0);
    const events = onlyJson(audit).events as Array<Record<string, unknown>>;
    const actions = events.map((e) => e.action);
    expect(actions).toEqual(
      expect.arrayContaining([
        'key.created',
        'key.rotated',
        'key.revoked',
        'resource.checked',
        'auth.failed',
      ]),
    );
    // Successful uses are counted (`keygate usage`), not listed one by one.
    expect(actions).not.toContain('auth.succeeded');
    for (const event of events) expect(event.keyId).toBe(key.id);
    expect(audit.stdout).not.toContain(key.secret.slice(14));

    const [limited, text] = await Promise.all([
      runHere(['audit', '--key', key.id, '--limit', '2', '--json']),
      runHere(['audit', '--key', key.id]),
    ]);
    expect(onlyJson(limited).events).toHaveLength(2);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/key\.revoked {2}success/);
  });

  it('prints usage of a key by hour, as counted by the app, once the app has shut down', async () => {
    // A graceful shutdown writes what the app counted since its last flush.
    await app!.stop();
    const [served] = await database.sql<Array<{ n: number }>>`
      select coalesce(sum(authenticated), 0)::int as n from keygate_usage_counts
      where key_id = ${key.id}`;
    const [failed] = await database.sql<Array<{ n: number }>>`
      select count(*)::int as n from keygate_audit_events
      where key_id = ${key.id} and outcome = 'failure'`;
    // At least: W1 and w_2 once each, then the rotated and the grace-period secrets on W1; the
    // denied resource and the revoked secret (a secret rotated away names no key).
    expect(served!.n).toBeGreaterThanOrEqual(5);
    expect(failed!.n).toBeGreaterThanOrEqual(2);

    const [json, text, month, badRange, noKey, unknown] = await Promise.all([
      runCli(['usage', key.id, '--json'], env),
      runHere(['usage', key.id]),
      runHere(['usage', key.id, '--range', '30d', '--json']),
      runHere(['usage', key.id, '--range', '1y']),
      runHere(['usage']),
      runHere(['usage', 'key_missing']),
    ]);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    const usage = onlyJson(json);
    expect(usage).toMatchObject({ keyId: key.id, range: '24h', interval: 'hour' });
    expect(usage.buckets).toHaveLength(24);
    const sum = (field: string, buckets: Array<Record<string, number>>) =>
      buckets.reduce((total, bucket) => total + bucket[field]!, 0);
    expect(sum('served', usage.buckets)).toBe(served!.n);
    expect(sum('failed', usage.buckets) + sum('rateLimited', usage.buckets)).toBe(failed!.n);
    expect(usage.buckets.filter((b: { served: number }) => b.served === 0).length).toBeGreaterThan(
      0,
    );

    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`Usage of ${key.id}, last 24h by hour (UTC)`);
    expect(lines[1]).toMatch(/^hour +served +failed +rate limited$/);
    expect(lines).toHaveLength(2 + 24 + 1);
    expect(lines[2]).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:00 +0 +0 +0$/);
    expect(lines.at(-1)).toMatch(new RegExp(`^total +${served!.n} +`));

    expect(onlyJson(month)).toMatchObject({ range: '30d', interval: 'day' });
    expect(onlyJson(month).buckets).toHaveLength(30);
    expect(badRange).toMatchObject({ code: 2, stdout: '' });
    expect(badRange.stderr).toContain('--range must be one of 24h, 7d, 30d (got 1y)');
    expect(noKey).toMatchObject({ code: 2, stdout: '' });
    expect(unknown).toEqual({ code: 1, stdout: '', stderr: 'keygate: API key not found\n' });
  });
});
