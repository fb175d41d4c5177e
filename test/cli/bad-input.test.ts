// Every kind of bad input gets one sentence on stderr, a non-zero exit, and leaves the store as
// it was: the --json listings after all the refusals equal the ones before.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519Line } from '../support/temp-store.js';
import { createSandbox, expectOneSentence, type CliSandbox } from './cli-harness.js';

let cli: CliSandbox;
let laptopPub: string;
let before: unknown;

async function snapshot(): Promise<unknown> {
  const [repos, keys, photos, users, ledger] = await Promise.all([
    cli.json(['repo', 'list']),
    cli.json(['key', 'list']),
    cli.json(['repo', 'show', 'photos']),
    cli.json(['user', 'list']),
    cli.json(['ledger']),
  ]);
  return { repos, keys, photos, users, ledger };
}

beforeAll(async () => {
  cli = createSandbox();
  laptopPub = cli.keyFile('laptop');
  await cli.ok(['repo', 'create', 'photos', '--quota', '10M']);
  await cli.ok(['key', 'add', 'laptop', '--file', laptopPub, '--repo', 'photos', '--role', 'append']);
  before = await snapshot();
});
afterAll(() => cli.cleanup());

type Case = [label: string, args: () => string[], message: string | RegExp, options?: { input?: string; code?: number }];

const cases: Case[] = [
  // unknown repository / key
  ['repo show, unknown repository', () => ['repo', 'show', 'nope'], "no repository named 'nope'"],
  ['grant, unknown repository', () => ['grant', 'laptop', 'nope', '--role', 'read'], "no repository named 'nope'"],
  ['grant, unknown key', () => ['grant', 'ghost', 'photos', '--role', 'read'], "no key named 'ghost'"],
  ['grant, unknown key id', () => ['grant', '77', 'photos', '--role', 'read'], 'no key with id 77'],
  ['revoke, unknown repository', () => ['revoke', 'laptop', 'nope'], "no repository named 'nope'"],
  ['key revoke, unknown key', () => ['key', 'revoke', 'ghost'], "no key named 'ghost'"],
  ['ledger, unknown repository', () => ['ledger', '--repo', 'nope'], "no repository named 'nope'"],
  [
    'key add with a grant on an unknown repository adds no key',
    () => ['key', 'add', 'desk', '--file', cli.keyFile('desk'), '--repo', 'nope', '--role', 'read'],
    "no repository named 'nope'",
  ],
  // malformed key input
  [
    'key file that is not a key',
    () => ['key', 'add', 'desk', '--file', cli.keyFile('garbage', 'hello world\n')],
    "the key is not an OpenSSH public key line (expected 'TYPE BASE64 [comment]')",
  ],
  [
    'key file with broken base64',
    () => ['key', 'add', 'desk', '--file', cli.keyFile('broken', 'ssh-ed25519 AAAA!!!! x\n')],
    "the key's base64 data is not valid base64",
  ],
  ['key file missing', () => ['key', 'add', 'desk', '--file', join(cli.root, 'missing.pub')], /^borgkeep: cannot read the key file \S+missing\.pub: there is no such file$/],
  ['key from empty stdin', () => ['key', 'add', 'desk', '-'], 'the input holds no public key (it is empty)', { input: '' }],
  [
    'key from stdin with options prefix',
    () => ['key', 'add', 'desk', '-'],
    "the line starts with authorized_keys options; give only 'TYPE BASE64 [comment]'",
    { input: `restrict ${ed25519Line()}\n` },
  ],
  ['key add without a source', () => ['key', 'add', 'desk'], "give the public key either with --file PUBKEY or as '-' to read it from stdin"],
  [
    'key add with two sources',
    () => ['key', 'add', 'desk', '-', '--file', cli.keyFile('two')],
    "give the public key either with --file PUBKEY or as '-' to read it from stdin",
  ],
  ['key add with --repo but no --role', () => ['key', 'add', 'desk', '--file', cli.keyFile('half'), '--repo', 'photos'], 'give --repo and --role together'],
  // duplicates
  ['duplicate key', () => ['key', 'add', 'laptop-again', '--file', laptopPub], "this key is already registered as 'laptop' (id 1)"],
  ['duplicate key name', () => ['key', 'add', 'laptop', '--file', cli.keyFile('other')], "a key named 'laptop' already exists"],
  ['duplicate repository', () => ['repo', 'create', 'photos'], "a repository named 'photos' already exists"],
  // bad role
  ['grant, bad role', () => ['grant', 'laptop', 'photos', '--role', 'admin'], "unknown role 'admin'; use read, append, prune or full"],
  [
    'key add, bad role',
    () => ['key', 'add', 'desk', '--file', cli.keyFile('role'), '--repo', 'photos', '--role', 'owner'],
    "unknown role 'owner'; use read, append, prune or full",
  ],
  ['user add, bad role', () => ['user', 'add', 'bob', '--role', 'root'], "unknown user role 'root'; use admin, operator or viewer"],
  // bad CIDR
  ['bad address', () => ['grant', 'laptop', 'photos', '--role', 'read', '--from', '300.1.1.1'], "'300.1.1.1' is not an IPv4 or IPv6 address or CIDR range"],
  [
    'bad prefix',
    () => ['grant', 'laptop', 'photos', '--role', 'read', '--from', '10.0.0.0/8,2001:db8::/129'],
    "'2001:db8::/129' has an invalid prefix length; IPv6 ranges take /0 to /128",
  ],
  [
    'host bits set',
    () => ['grant', 'laptop', 'photos', '--role', 'read', '--from', '192.168.1.5/24'],
    "'192.168.1.5/24' has address bits set past its /24 prefix; did you mean 192.168.1.0/24?",
  ],
  [
    'empty list entry',
    () => ['grant', 'laptop', 'photos', '--role', 'read', '--from', '10.0.0.1,,10.0.0.2'],
    "the address list '10.0.0.1,,10.0.0.2' has an empty entry; separate ranges with single commas",
  ],
  // bad --expires
  ['expires: words', () => ['grant', 'laptop', 'photos', '--role', 'read', '--expires', 'tomorrow'], /^borgkeep: 'tomorrow' is not a time; use an ISO-8601 date/],
  ['expires: past', () => ['grant', 'laptop', 'photos', '--role', 'read', '--expires', '2020-01-01'], 'the expiry time 2020-01-01T00:00:00.000Z has already passed'],
  ['expires: no such day', () => ['grant', 'laptop', 'photos', '--role', 'read', '--expires', '2030-02-30'], "'2030-02-30' is not a valid date or time"],
  [
    'expires: no zone',
    () => ['grant', 'laptop', 'photos', '--role', 'read', '--expires', '2030-01-01T10:00'],
    "'2030-01-01T10:00' has no time zone; end it with Z for UTC or an offset such as +02:00",
  ],
  ['expires: zero from now', () => ['grant', 'laptop', 'photos', '--role', 'read', '--expires', '0d'], /^borgkeep: the expiry time \S+ has already passed$/],
  // bad counts
  ['writes per day zero', () => ['grant', 'laptop', 'photos', '--role', 'read', '--writes-per-day', '0'], "--writes-per-day must be a whole number from 1 to 1000000, not '0'"],
  ['ledger limit', () => ['ledger', '--limit', 'many'], "--limit must be a whole number from 1 to 10000, not 'many'"],
  // bad quota
  ['quota too small', () => ['repo', 'create', 'small', '--quota', '9M'], "the quota '9M' is too small; borg needs at least 10M"],
  [
    'quota not a size',
    () => ['repo', 'create', 'small', '--quota', '10X'],
    "the quota '10X' is not a size; use a number with an optional K, M, G, T or P suffix, e.g. 500G",
  ],
  // bad repository names
  ['repo name with a slash', () => ['repo', 'create', 'a/b'], "the repository name 'a/b' may only contain letters, digits, '.', '_' and '-'"],
  ['repo name starting with a dot', () => ['repo', 'create', '.hidden'], "a repository name cannot start with '.' or '-' ('.hidden')"],
  ['repo name starting with a dash', () => ['repo', 'create', '--', '-x'], "a repository name cannot start with '.' or '-' ('-x')"],
  ['repo name too long', () => ['repo', 'create', 'r'.repeat(65)], `the repository name '${'r'.repeat(65)}' is longer than 64 characters`],
  ['key name all digits', () => ['key', 'add', '123', '--file', cli.keyFile('digits')], "a key name cannot be only digits ('123'), since a number names a key by its id"],
  // usage errors: exit 2
  ['missing --role', () => ['grant', 'laptop', 'photos'], "required option '--role <role>' not specified", { code: 2 }],
  ['unknown command', () => ['frobnicate'], "unknown command 'frobnicate'", { code: 2 }],
  ['unknown option', () => ['repo', 'list', '--jsno'], "unknown option '--jsno' (did you mean --json?)", { code: 2 }],
  ['missing argument', () => ['repo', 'create'], "missing required argument 'name'", { code: 2 }],
];

describe('bad input', () => {
  it('gets one sentence, a non-zero exit and no change to the store', async () => {
    // A few at a time: they are independent, and concurrent refusals must not disturb the store either.
    for (let i = 0; i < cases.length; i += 6) {
      await Promise.all(
        cases.slice(i, i + 6).map(async ([label, args, message, options]) => {
          const result = await cli.run(args(), options?.input === undefined ? {} : { input: options.input });
          try {
            expectOneSentence(result, message, options?.code ?? 1);
          } catch (error) {
            throw new Error(`${label}: ${(error as Error).message}\nstderr: ${result.stderr}`);
          }
        }),
      );
    }
    expect(await snapshot()).toEqual(before);
  });

  it('refuses a real ssh-keygen RSA 1024 key and a private key file, naming the problem', async () => {
    const file = join(cli.root, 'id_rsa_small');
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '1024', '-N', '', '-f', file], { stdio: 'pipe' });
    const [small, privateKey] = await Promise.all([
      cli.run(['key', 'add', 'old', '--file', `${file}.pub`]),
      cli.run(['key', 'add', 'old', '--file', file]),
    ]);
    expectOneSentence(small, 'RSA keys must have at least 2048 bits; this one has 1024');
    expectOneSentence(privateKey, 'this is a private key; give the public key (the .pub file next to it) instead');
    expect(await snapshot()).toEqual(before);
  });
});
