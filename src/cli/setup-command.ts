// `borgkeep repo setup NAME --key KEY [--borgmatic 1.7|1.8]`: the client set-up of one grant, the
// same text the console shows (src/gateway/client-setup.ts), with the host, port and host keys
// `borgkeep serve` advertised at its last start. Reads the store and <data-dir>/ssh/*.pub; never
// a private key, never a passphrase.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';

import { invalidInput, notFound } from '../errors.js';
import { readAdvertisedEndpoint, readHostPublicKeys, type AdvertisedEndpoint } from '../gateway/advertised-endpoint.js';
import { BORGMATIC_FORMATS, clientPathProblem, clientSetup, repositoryUrl, DEFAULT_CONFIG_DIR, ENCRYPTION_REASON, RECOMMENDED_ENCRYPTION, type BorgmaticFormat } from '../gateway/client-setup.js';
import { withStore, type CliContext } from './cli-context.js';

/** What serve advertised, or placeholders (with why) when it never started or listens on every address. */
export function advertisedTarget(dataDir: string): { target: { user: string; host: string; port: number }; note: string | null } {
  const endpoint: AdvertisedEndpoint | null = readAdvertisedEndpoint(join(dataDir, 'ssh'));
  if (endpoint === null) {
    return { target: { user: 'borg', host: 'HOST', port: 2222 }, note: 'borgkeep serve has not started yet: HOST and the port are placeholders (serve --public-host HOST[:PORT] sets them)' };
  }
  if (endpoint.host === null) {
    return { target: { user: endpoint.user, host: 'HOST', port: endpoint.port }, note: "serve listens on every address: replace HOST with this server's name, or start serve with --public-host HOST[:PORT]" };
  }
  return { target: { user: endpoint.user, host: endpoint.host, port: endpoint.port }, note: null };
}

/** A repository's URL for the CLI's hints: serve's advertised endpoint, or HOST:PORT before serve ever started. */
export function advertisedUrl(dataDir: string, repository: string): string {
  if (readAdvertisedEndpoint(join(dataDir, 'ssh')) === null) return `ssh://borg@HOST:PORT/./${repository}`;
  return repositoryUrl(advertisedTarget(dataDir).target, repository);
}

export function registerSetupCommand(repo: Command, ctx: CliContext): void {
  repo
    .command('setup')
    .description("print a grant's client set-up: known_hosts lines, shell commands, a borgmatic config and a Vorta hint")
    .argument('<name>', 'repository name')
    .requiredOption('--key <key>', 'the key (name or id) the client holds; it needs a grant on the repository')
    .option('--borgmatic <version>', "the borgmatic config format: 1.7 (Debian 12's sections) or 1.8 (the flat format of 1.8 and later)", '1.8')
    .option('--identity-file <file>', "the key's private file on the client (default: ssh's default key)")
    .option('--config-dir <dir>', "where borgmatic's config, known_hosts and passphrase files live on the client", DEFAULT_CONFIG_DIR)
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { key: string; borgmatic: string; identityFile?: string; configDir: string; json?: boolean }) => {
      if (!(BORGMATIC_FORMATS as readonly string[]).includes(opts.borgmatic)) throw invalidInput(`--borgmatic: '${opts.borgmatic}' is not 1.7 or 1.8`);
      const format = opts.borgmatic as BorgmaticFormat;
      const configDir = opts.configDir.replace(/(.)\/+$/, '$1');
      for (const [value, flag] of [
        [opts.identityFile, '--identity-file'],
        [configDir, '--config-dir'],
      ] as const) {
        const problem = value === undefined ? null : clientPathProblem(value, flag);
        if (problem) throw invalidInput(problem);
      }
      const dataDir = ctx.getDataDir();
      const { repository, key, role, initialized } = await withStore(ctx, async (store) => {
        const repository = await store.getRepository(name);
        const key = await store.getKey(opts.key);
        const grant = (await store.listGrants({ repositoryId: repository.id, keyId: key.id }))[0];
        if (!grant) throw notFound(`key '${key.name}' has no grant on repository '${repository.name}'; give it one with: borgkeep grant ${key.name} ${repository.name} --role append`);
        return { repository, key, role: grant.grant.role, initialized: existsSync(join(store.paths.repository(repository.dirName), 'config')) };
      });
      const { target, note } = advertisedTarget(dataDir);
      const hostKeys = readHostPublicKeys(join(dataDir, 'ssh'));
      const setup = clientSetup({
        target,
        hostKeys,
        repository: { name: repository.name, initialized },
        key: { name: key.name, fingerprint: key.fingerprint, role },
        identityFile: opts.identityFile ?? null,
        configDir,
      });
      if (opts.json) {
        ctx.out.json({ repository: repository.name, key: key.name, role, initialized, encryption: RECOMMENDED_ENCRYPTION, encryptionReason: ENCRYPTION_REASON, ...setup });
        return;
      }
      const lines = [
        ...(note ? [`note: ${note}`, ''] : []),
        `repository URL: ${setup.url}`,
        `encryption: ${RECOMMENDED_ENCRYPTION} (${ENCRYPTION_REASON})`,
        '',
        `# known_hosts lines (${configDir}/known_hosts)`,
        hostKeys.length > 0 ? setup.knownHosts : '# none yet: borgkeep serve creates its host keys at its first start',
        '',
        '# shell',
        setup.shell,
        '',
        `# borgmatic ${format === '1.7' ? '1.7' : '1.8 and later'}`,
        setup.borgmatic[format],
        '',
        setup.vorta,
      ];
      ctx.out.line(lines.join('\n'));
    });
}
