// Reads one of Heartbeat's configuration files: size and type checked on the open descriptor
// before the read, and the mode returned from that same descriptor (authkeys' 0600 check),
// so that a file swapped between the check and the read cannot slip through.
import { open } from 'node:fs/promises';
import { ConfigError } from './errors.js';
import { haTextLimits } from './ha-lexer.js';

/** UTF-8 needs at most 4 bytes per character, so no valid file within the text limit is larger. */
export const haFileBytesMax = haTextLimits.charsMax * 4;

export interface TextFile {
  readonly text: string;
  /** Permission bits (st_mode & 0o7777). */
  readonly mode: number;
}

function ioError(path: string, err: unknown): ConfigError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const why =
    code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES'
        ? 'permission denied'
        : code === 'EISDIR'
          ? 'is a directory'
          : String((err as Error | undefined)?.message ?? err);
  return new ConfigError('CONFIG_IO', `cannot read ${path}: ${why}${code ? ` (${code})` : ''}`);
}

export async function readTextFile(path: string, bytesMax: number = haFileBytesMax): Promise<TextFile> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw ioError(path, err);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      throw new ConfigError('CONFIG_IO', `cannot read ${path}: expected a regular file`);
    }
    if (st.size > bytesMax) {
      throw new ConfigError(
        'CONFIG_IO',
        `cannot read ${path}: expected at most ${bytesMax} bytes, found ${st.size}`,
      );
    }
    const bytes = await handle.readFile();
    // The file may have grown since fstat; the limit holds for what was actually read.
    if (bytes.length > bytesMax) {
      throw new ConfigError(
        'CONFIG_IO',
        `cannot read ${path}: expected at most ${bytesMax} bytes, found more`,
      );
    }
    return { text: bytes.toString('utf8'), mode: st.mode & 0o7777 };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw ioError(path, err);
  } finally {
    await handle.close();
  }
}
