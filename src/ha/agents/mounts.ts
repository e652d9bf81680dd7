// The kernel's mount table as /proc/mounts prints it (fstab layout, one mount per line, blanks in
// names escaped as octal `\040`), and the questions Filesystem asks of it. Pure but for realpath.
import { realpath } from 'node:fs/promises';

export interface MountEntry {
  readonly source: string;
  readonly dir: string;
  readonly fstype: string;
  readonly options: string;
}

/** Far beyond a real host's mounts (containers reach a few thousand); bounds a corrupted file. */
export const mountsMax = 100_000;

/** proc(5): "spaces, tabs, newlines and backslashes in the fields are written as \040 \011 \012 \134". */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Mounts in table order: a later entry on the same directory is stacked over an earlier one. */
export function parseProcMounts(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (out.length >= mountsMax) break;
    const f = line.split(/[ \t]+/);
    if (f.length < 4 || f[0] === '') continue;
    out.push({
      source: unescapeMountField(f[0]!),
      dir: unescapeMountField(f[1]!),
      fstype: unescapeMountField(f[2]!),
      options: f[3]!,
    });
  }
  return out;
}

/** The path with symlinks resolved (/dev/drbd1 → /dev/loop3), or as given when it does not resolve. */
export async function canonicalPath(path: string): Promise<string> {
  if (!path.startsWith('/')) return path;
  try {
    return await realpath(path);
  } catch {
    return path;
  }
}

/** The table with every source resolved, so that a device compares equal under any of its names. */
export async function resolveSources(entries: readonly MountEntry[]): Promise<MountEntry[]> {
  const cache = new Map<string, Promise<string>>();
  return Promise.all(
    entries.map(async (e) => {
      let resolved = cache.get(e.source);
      if (resolved === undefined) {
        resolved = canonicalPath(e.source);
        cache.set(e.source, resolved);
      }
      return { ...e, source: await resolved };
    }),
  );
}
