// Paths that tests share: the repository root (tests run from dist/test, the
// fixtures stay in the source tree) and its fixtures.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root; this file is compiled to dist/test/helpers/. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const fixtures = join(repoRoot, 'test/fixtures');
export const bin = (name: string) => join(repoRoot, 'bin', name);
