// The whole Heartbeat configuration of one node: ha.cf, authkeys and haresources from one
// directory (default /etc/ha.d), read in Heartbeat's order and checked against each other.
import { join } from 'node:path';
import { type Authkeys, loadAuthkeys } from './authkeys.js';
import { ConfigError, type ConfigWarning } from './errors.js';
import { filePos, quote } from './ha-lexer.js';
import { type HaCf, loadHaCf } from './hacf.js';
import { type HaResources, loadHaResources } from './haresources.js';

export const defaultHaConfigDir = '/etc/ha.d';

export interface HaConfig {
  readonly dir: string;
  readonly hacf: HaCf;
  readonly authkeys: Authkeys;
  readonly resources: HaResources;
}

export interface HaConfigResult {
  readonly config: HaConfig;
  /** Warnings of all three files, ha.cf first. */
  readonly warnings: readonly ConfigWarning[];
}

export interface HaConfigPaths {
  readonly hacf: string;
  readonly authkeys: string;
  readonly haresources: string;
}

export function haConfigPaths(dir: string): HaConfigPaths {
  return { hacf: join(dir, 'ha.cf'), authkeys: join(dir, 'authkeys'), haresources: join(dir, 'haresources') };
}

/**
 * Every group's preferred node must be a cluster node: Heartbeat refuses an unknown one
 * ("Bad nodename in haresources"), since no node would ever take the group as its own.
 */
export function checkResourceNodes(hacf: HaCf, resources: HaResources): ConfigWarning[] {
  const names = new Set(hacf.nodes.map((n) => n.name));
  for (const group of resources.groups) {
    if (group.node === hacf.witness?.name) {
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `expected a node with disks, found the witness ${quote(group.node)} (it runs no groups)`,
        group.nodePos,
      );
    }
    if (!names.has(group.node)) {
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `expected a node listed in ${hacf.file} (${[...names].join(', ')}), found ${quote(group.node)}`,
        group.nodePos,
      );
    }
  }
  if (resources.groups.length === 0) {
    return [
      {
        code: 'SUSPICIOUS',
        message: 'no resource groups: tandem-ha will track membership but fail nothing over',
        pos: filePos(resources.file),
      },
    ];
  }
  return [];
}

/** Loads and checks ha.cf, authkeys and haresources of `dir`. Throws ConfigError. */
export async function loadHaConfig(dir: string = defaultHaConfigDir): Promise<HaConfigResult> {
  const paths = haConfigPaths(dir);
  // Heartbeat's order: ha.cf (parse_config), then authkeys (parse_authfile), then haresources.
  const hacf = await loadHaCf(paths.hacf);
  const authkeys = await loadAuthkeys(paths.authkeys);
  const resources = await loadHaResources(paths.haresources);
  const crossWarnings = checkResourceNodes(hacf.config, resources.config);
  return {
    config: { dir, hacf: hacf.config, authkeys: authkeys.config, resources: resources.config },
    warnings: [...hacf.warnings, ...authkeys.warnings, ...resources.warnings, ...crossWarnings],
  };
}
