/**
 * The command line itself: what is answered before any database is opened (version, help,
 * refused arguments). `test/cli.test.ts` runs the commands against Postgres; the external suite
 * runs the installed binary.
 */
import { describe, expect, it } from 'vitest';
import packageJson from '../package.json' with { type: 'json' };
import { HELP, run } from './cli.js';

async function keygate(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(argv, {
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
    // A database URL nothing listens on: any command that got as far as opening it would fail
    // with exit code 1, not the codes asserted here.
    env: { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
  });
  return { code, out, err };
}

const HINT = "Run 'keygate --help' for usage.\n";

describe('keygate CLI arguments', () => {
  it('--version and -v print the version alone', async () => {
    for (const flag of ['--version', '-v']) {
      expect(await keygate(flag)).toEqual({ code: 0, out: `${packageJson.version}\n`, err: '' });
    }
    expect(await keygate('--version', 'extra')).toMatchObject({ code: 2, out: '' });
  });

  it('--help, -h and help print every command; nothing at all prints it too, as a mistake', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      expect(await keygate(...argv)).toEqual({ code: 0, out: HELP, err: '' });
    }
    expect(await keygate()).toEqual({ code: 2, out: HELP, err: '' });
    expect(HELP).toContain(`keygate ${packageJson.version}`);
    expect(HELP).toContain('keygate <command> --help');
  });

  it.each([
    ['migrate', '--json'],
    ['keys create', '--allow-endpoint'],
    ['keys list', '--include-revoked'],
    ['keys show', 'ID'],
    ['keys rotate', '--grace SECONDS'],
    ['keys revoke', 'ID'],
    ['audit', '--key ID'],
  ])("'%s --help' describes that command only", async (name, mentions) => {
    const words = name.split(' ');
    const help = await keygate(...words, '--help');
    expect(help).toMatchObject({ code: 0, err: '' });
    expect(help.out).toMatch(new RegExp(`^Usage:\\n  keygate ${name}`));
    expect(help.out).toContain(mentions);
    expect(help.out).toContain('DATABASE_URL');
    const others = ['migrate', 'keys create', 'keys list', 'keys show', 'audit'].filter(
      (other) => other !== name,
    );
    for (const other of others) expect(help.out).not.toContain(`keygate ${other}`);
    expect(await keygate('help', ...words)).toEqual(help);
    expect(await keygate(...words, '-h')).toEqual(help);
  });

  it('refuses an option of another command, naming the command', async () => {
    const result = await keygate('keys', 'list', '--grace', '60');
    expect(result).toEqual({
      code: 2,
      out: '',
      err: `keygate: Unknown option '--grace' for 'keys list' (see 'keygate keys list --help')\n${HINT}`,
    });
    expect((await keygate('migrate', '--name', 'x')).code).toBe(2);
    expect((await keygate('keys', 'revoke', 'key_1', '--json', '--limit', '5')).code).toBe(2);
  });

  it('refuses stray and missing arguments', async () => {
    expect(await keygate('keys', 'show', 'key_1', 'key_2')).toEqual({
      code: 2,
      out: '',
      err: `keygate: unexpected argument 'key_2' for 'keys show'\n${HINT}`,
    });
    expect(await keygate('keys', 'rotate')).toEqual({
      code: 2,
      out: '',
      err: `keygate: keys rotate needs a key ID\n${HINT}`,
    });
    expect((await keygate('migrate', 'now')).code).toBe(2);
    expect((await keygate('keys', 'list', 'all')).code).toBe(2);
  });

  it('refuses options before the command and unknown commands', async () => {
    expect(await keygate('--json', 'keys', 'list')).toEqual({
      code: 2,
      out: '',
      err: `keygate: Unknown option '--json': options go after the command\n${HINT}`,
    });
    expect(await keygate('keys')).toMatchObject({
      code: 2,
      err: `keygate: unknown command 'keys'\n${HINT}`,
    });
    expect(await keygate('keys', 'frobnicate', '--json')).toMatchObject({
      code: 2,
      err: `keygate: unknown command 'keys frobnicate'\n${HINT}`,
    });
    expect(await keygate('help', 'nothing')).toMatchObject({ code: 2, out: '' });
  });
});
