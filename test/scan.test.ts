/**
 * SPEC §8 and §11: `keygate scan` finds this deployment's keys in files, git history and stdin,
 * says which are live (looked up in Postgres), reports them as leaks with `--report`, and never
 * prints a secret. The history case runs the real binary against a scratch git repository.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createKeygate, type Keygate } from '@keygate/core';
import { run } from 'keygate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { type CliResult, runCli } from './support/processes.js';

let database: TestDatabase;
let keygate: Keygate;
let scratch: string;

beforeAll(async () => {
  database = await createTestDatabase();
  keygate = createKeygate({ store: database.store, auditSinks: [database.auditSink] });
  scratch = mkdtempSync(path.join(os.tmpdir(), 'keygate-scan-'));
});

afterAll(async () => {
  await keygate?.close();
  await database?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** `keygate ...` in this process (same output and exit code as the binary), with `stdin` when given. */
async function scan(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  stdin?: string[],
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(['scan', ...args], {
    out: (text) => {
      stdout += text;
    },
    err: (text) => {
      stderr += text;
    },
    env: { DATABASE_URL: '', ...env },
    ...(stdin ? { stdin: toStream(stdin) } : {}),
  } as Parameters<typeof run>[1]);
  return { code, stdout, stderr };
}

async function* toStream(chunks: string[]): AsyncIterable<Uint8Array> {
  for (const chunk of chunks) yield Buffer.from(chunk);
}

function git(repository: string, ...args: string[]): string {
  return execFileSync(
    'git',
    ['-C', repository, '-c', 'user.name=Test', '-c', 'user.email=test@example.com', ...args],
    { encoding: 'utf8' },
  );
}

describe('keygate scan --git --report', () => {
  it('finds a live key committed (and deleted since) in a scratch repository, reports it and revokes it', async () => {
    const leaked = await keygate.keys.create({ name: 'leaked', scopes: ['read:data'] });
    const bystander = await keygate.keys.create({ name: 'bystander', scopes: ['read:data'] });
    const repository = path.join(scratch, 'repository');
    mkdirSync(repository);
    git(repository, 'init', '-q');
    writeFileSync(
      path.join(repository, 'config.js'),
      `// settings\nexport const api = {\n  key: '${leaked.secret}',\n};\n`,
    );
    git(repository, 'add', 'config.js');
    git(repository, 'commit', '-q', '-m', 'add config');
    const commit = git(repository, 'rev-parse', 'HEAD').trim();
    git(repository, 'rm', '-q', 'config.js');
    git(repository, 'commit', '-q', '-m', 'remove the key');

    const result = await runCli(['scan', '--git', '--report', repository], {
      DATABASE_URL: database.url,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      `config.js:3:9 (commit ${commit.slice(0, 12)})  ${leaked.key.start}…  secret/live  live, reported: revoke`,
    );
    expect(result.stdout).not.toContain(leaked.secret);
    expect(result.stdout).not.toContain(bystander.key.start);

    const [row] =
      await database.sql`select revoked_at, leak from keygate_api_keys where id = ${leaked.key.id}`;
    expect(row!.revoked_at).toBeInstanceOf(Date);
    expect(row!.leak).toMatchObject({
      containment: 'revoke',
      source: 'scan',
      url: `git:${commit}:config.js:3`,
    });
    const events = await database.sql`select action, actor, detail from keygate_audit_events
      where key_id = ${leaked.key.id} and action in ('key.leaked', 'key.revoked') order by action`;
    expect(events.map((e) => [e.action, e.actor])).toEqual([
      ['key.leaked', 'cli'],
      ['key.revoked', 'cli'],
    ]);
    const [other] =
      await database.sql`select revoked_at from keygate_api_keys where id = ${bystander.key.id}`;
    expect(other!.revoked_at).toBeNull();

    // Revoked now: found again, no longer live, so the scan passes.
    const again = await scan(['--git', repository, '--json'], { DATABASE_URL: database.url });
    expect(again.code).toBe(0);
    const json = JSON.parse(again.stdout);
    expect(json.findings).toEqual([
      expect.objectContaining({
        path: 'config.js',
        line: 3,
        commit,
        start: leaked.key.start,
        status: 'revoked',
        keyId: leaked.key.id,
      }),
    ]);
    expect(json.live).toBe(0);
    expect(again.stdout).not.toContain(leaked.secret);
  });

  it('finds a key in a commit message too', async () => {
    const key = await keygate.keys.create({ name: 'message', scopes: ['read:data'] });
    const repository = path.join(scratch, 'messages');
    mkdirSync(repository);
    git(repository, 'init', '-q');
    git(repository, 'commit', '-q', '--allow-empty', '-m', `use ${key.secret} for now`);
    const result = await scan(['--git', repository, '--json'], { DATABASE_URL: database.url });
    expect(result.code).toBe(1);
    const [finding] = JSON.parse(result.stdout).findings;
    expect(finding).toMatchObject({ start: key.key.start, status: 'live' });
    expect(finding.path).toMatch(/^commit [0-9a-f]{40}$/);
  });
});

describe('keygate scan of files and stdin', () => {
  it('without a database: finds keys, skips binary files and git internals, fails on any secret key', async () => {
    const format = keygate.leaks.format;
    const secret = format.generate('secret', 'test').secret;
    const publicKey = format.generate('public', 'live').secret;
    const tree = path.join(scratch, 'tree');
    mkdirSync(path.join(tree, 'src'), { recursive: true });
    mkdirSync(path.join(tree, 'node_modules', 'dep'), { recursive: true });
    writeFileSync(path.join(tree, 'src', 'a.ts'), `const k = "${secret}";\n`);
    writeFileSync(path.join(tree, 'src', 'b.html'), `<script>init('${publicKey}')</script>`);
    writeFileSync(
      path.join(tree, 'image.bin'),
      Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from(secret)]),
    );
    writeFileSync(path.join(tree, 'node_modules', 'dep', 'x.js'), secret);

    const result = await scan([tree, '--json']);
    expect(result.code).toBe(1);
    const json = JSON.parse(result.stdout);
    expect(
      json.findings.map((f: { path: string; status: string }) => [path.basename(f.path), f.status]),
    ).toEqual([
      ['a.ts', 'unchecked'],
      ['b.html', 'unchecked'],
    ]);
    expect(json.skipped).toEqual([
      { path: expect.stringMatching(/image\.bin$/), reason: 'binary' },
    ]);
    expect(result.stdout).not.toContain(secret);

    // A public key alone is meant to be seen: the scan passes.
    const onlyPublic = await scan([path.join(tree, 'src', 'b.html')]);
    expect(onlyPublic.code).toBe(0);
    expect(onlyPublic.stdout).toContain('public/live  unchecked');
  });

  it('--stdin: finds a key split across chunks, at its line, and says whether it is live', async () => {
    const key = await keygate.keys.create({ name: 'piped', scopes: ['read:data'] });
    const text = `diff --git a/x b/x\n+++ b/x\n+token=${key.secret}\n`;
    const cut = text.indexOf(key.secret) + 10;
    const result = await scan(['--stdin'], { DATABASE_URL: database.url }, [
      text.slice(0, cut),
      text.slice(cut),
    ]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`-:3:8  ${key.key.start}…  secret/live  live`);
    expect(result.stdout).not.toContain(key.secret);
  });

  it('a key of another prefix scheme is not this deployment’s: KEYGATE_PREFIXES', async () => {
    const branded = createKeygate({
      prefixes: {
        secret: { live: 'acme_sk_', test: 'acme_st_' },
        public: { live: 'acme_pk_', test: 'acme_pt_' },
      },
    });
    const file = path.join(scratch, 'branded.txt');
    const secret = branded.leaks.format.generate('secret', 'live').secret;
    writeFileSync(file, secret);
    expect((await scan([file])).code).toBe(0);
    const found = await scan([file], { KEYGATE_PREFIXES: 'acme_sk_,acme_st_,acme_pk_,acme_pt_' });
    expect(found.code).toBe(1);
    expect(found.stdout).toContain('secret/live');
    await branded.close();
  });

  it('refuses --report without a database, and --stdin with paths (exit code 2)', async () => {
    const report = await scan(['--report', scratch]);
    expect(report.code).toBe(2);
    expect(report.stderr).toMatch(/--report needs DATABASE_URL/);
    const mixed = await scan(['--stdin', scratch]);
    expect(mixed.code).toBe(2);
  });
});
