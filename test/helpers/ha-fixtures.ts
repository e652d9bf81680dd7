// Paths of the Heartbeat fixtures and copies of them in temporary directories: git does not
// keep file modes, and authkeys must be 0600 before tandem-ha reads it.
import { chmod, copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Tests run from dist/test/<dir>/, three levels below the repository root. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const haFixtureDir = join(repoRoot, 'test', 'fixtures', 'ha');

export async function readHaFixture(relative: string): Promise<string> {
  return readFile(join(haFixtureDir, relative), 'utf8');
}

export interface ConfigDirOptions {
  /** Mode given to authkeys; 0600 unless a test wants it wrong. */
  readonly authkeysMode?: number;
  /** Files to write over the fixture's (name → text). */
  readonly files?: Readonly<Record<string, string>>;
}

/** Temporary directories handed out by this module, removed by removeConfigDirs(). */
const made: string[] = [];

/** Copies fixture directory `name` (seed, seed-sha1) to a fresh temporary directory. */
export async function makeConfigDir(name: string, options: ConfigDirOptions = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-ha-test-'));
  made.push(dir);
  for (const entry of await readdir(join(haFixtureDir, name))) {
    await copyFile(join(haFixtureDir, name, entry), join(dir, entry));
  }
  for (const [file, text] of Object.entries(options.files ?? {})) {
    await writeFile(join(dir, file), text);
  }
  await chmod(join(dir, 'authkeys'), options.authkeysMode ?? 0o600);
  return dir;
}

export async function removeConfigDirs(): Promise<void> {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
}
