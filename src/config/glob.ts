// A small glob for `include "drbd.d/*.res";`: '*', '?' and '[...]' within one
// path segment, no '**'. Matches are sorted, like the shell's (and drbdadm's glob(3)).
import { readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

/** Most files one include may pull in. */
export const globMatchesMax = 4096;

function segmentRegex(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i] as string;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close === -1) {
        re += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, close);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const hasMagic = (s: string) => /[*?[]/.test(s);

/** Files (not directories) matching `pattern`, relative to `baseDir` unless absolute. */
export function globFiles(pattern: string, baseDir: string): string[] {
  const abs = isAbsolute(pattern) ? pattern : resolve(baseDir, pattern);
  const segments = abs.split('/').filter((s, i) => s !== '' || i === 0);
  let paths = ['/'];
  for (const seg of segments.slice(1)) {
    const next: string[] = [];
    for (const dir of paths) {
      if (!hasMagic(seg)) {
        next.push(join(dir, seg));
        continue;
      }
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      const re = segmentRegex(seg);
      for (const n of names.sort()) {
        // As in the shell, a wildcard does not match a leading '.'.
        if (n.startsWith('.') && !seg.startsWith('.')) continue;
        if (re.test(n)) next.push(join(dir, n));
      }
    }
    paths = next;
    if (paths.length > globMatchesMax) paths = paths.slice(0, globMatchesMax);
  }
  return paths.filter((p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  });
}
