// authkeys: the seed's crc key and a sha1 variant, secrets that never leak into output, the
// 0600 rule on the real file, a table of refusals (code and line:col), and a fuzz test.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  type AuthkeysResult,
  checkAuthkeysMode,
  loadAuthkeys,
  parseAuthkeys,
} from '../../src/config/authkeys.js';
import { ConfigError, type ConfigErrorCode } from '../../src/config/errors.js';
import { makeConfigDir, readHaFixture, removeConfigDirs } from '../helpers/ha-fixtures.js';
import { fuzzParser } from '../helpers/mutate.js';

const file = '/etc/ha.d/authkeys';

function parse(text: string): AuthkeysResult {
  return parseAuthkeys(text, file);
}

after(removeConfigDirs);

describe('authkeys: the seed story', () => {
  it('signs with key 1, crc, and warns that crc is no security', async () => {
    const { config, warnings } = parse(await readHaFixture('seed/authkeys'));
    assert.deepEqual(
      [config.active.index, config.active.method, config.active.secret],
      [1, 'crc', undefined],
    );
    assert.deepEqual(config.activePos, { file, line: 2, col: 6 });
    assert.equal(config.keys.length, 1);
    assert.deepEqual(
      warnings.map((w) => [w.code, w.pos.line, w.pos.col]),
      [['SUSPICIOUS', 3, 1]],
    );
  });

  it('reads the sha1 variant, with # inside a secret and a second key', async () => {
    const { config, warnings } = parse(await readHaFixture('seed-sha1/authkeys'));
    assert.deepEqual(warnings, []);
    assert.deepEqual([config.active.index, config.active.method], [2, 'sha1']);
    assert.equal(config.active.secret?.reveal(), 's3cret-of-the#seed');
    assert.deepEqual(
      config.keys.map((k) => [k.index, k.method]),
      [
        [2, 'sha1'],
        [3, 'md5'],
      ],
    );
  });

  it('keeps secrets out of JSON, inspect and string conversion', async () => {
    const { config } = parse(await readHaFixture('seed-sha1/authkeys'));
    for (const shown of [JSON.stringify(config), inspect(config, { depth: 10 }), `${config.active.secret}`]) {
      assert.ok(!shown.includes('s3cret'), shown);
      assert.ok(!shown.includes('older-secret'), shown);
    }
  });

  it('accepts sha256 and a key 0', () => {
    const { config } = parse('auth 0\n0 sha256 x\n');
    assert.deepEqual([config.active.index, config.active.method], [0, 'sha256']);
  });
});

describe('authkeys: file mode', () => {
  const allowed = [0o600, 0o400, 0o700, 0o4600];
  for (const mode of allowed) {
    it(`accepts mode ${mode.toString(8)}`, () => {
      checkAuthkeysMode(mode, file);
    });
  }
  const refused = [0o644, 0o640, 0o604, 0o620, 0o602, 0o666];
  for (const mode of refused) {
    it(`refuses mode ${mode.toString(8).padStart(4, '0')}`, () => {
      assert.throws(
        () => checkAuthkeysMode(mode, file),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.code === 'CONFIG_PERMISSION' &&
          err.message.includes(`must be mode 0600 (is ${mode.toString(8).padStart(4, '0')})`),
      );
    });
  }

  it('loads a 0600 file and refuses the same file at 0644', async () => {
    const good = await makeConfigDir('seed');
    assert.equal((await loadAuthkeys(join(good, 'authkeys'))).config.active.method, 'crc');
    const bad = await makeConfigDir('seed', { authkeysMode: 0o644 });
    await assert.rejects(loadAuthkeys(join(bad, 'authkeys')), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.code, 'CONFIG_PERMISSION');
      assert.ok(err.message.includes(join(bad, 'authkeys')), err.message);
      return true;
    });
  });

  it('reports a missing file as CONFIG_IO naming it', async () => {
    const dir = await makeConfigDir('seed');
    await assert.rejects(
      loadAuthkeys(join(dir, 'nope')),
      (err: unknown) =>
        err instanceof ConfigError && err.code === 'CONFIG_IO' && err.message.includes('nope'),
    );
  });
});

describe('authkeys: refusals name the code and line:col', () => {
  const cases: [name: string, text: string, code: ConfigErrorCode, line: number, col: number][] = [
    ['crc with a secret', 'auth 1\n1 crc secret\n', 'CONFIG_SYNTAX', 2, 7],
    ['sha1 without a secret', 'auth 1\n1 sha1\n', 'CONFIG_SYNTAX', 2, 7],
    ['md5 without a secret before a blank', 'auth 1\n1 md5   \n', 'CONFIG_SYNTAX', 2, 6],
    ['a secret with a blank', 'auth 1\n1 sha1 two words\n', 'CONFIG_SYNTAX', 2, 12],
    ['auth naming an undefined key', 'auth 2\n1 sha1 x\n', 'CONFIG_SEMANTIC', 1, 6],
    ['no auth line', '1 sha1 x\n', 'CONFIG_SEMANTIC', 1, 1],
    ['two auth lines', 'auth 1\nauth 1\n1 crc\n', 'CONFIG_SEMANTIC', 2, 1],
    ['a key defined twice', 'auth 1\n1 crc\n1 md5 x\n', 'CONFIG_SEMANTIC', 3, 1],
    ['an unknown method', 'auth 1\n1 sha512 x\n', 'CONFIG_VALUE', 2, 3],
    ['a method in upper case', 'auth 1\n1 SHA1 x\n', 'CONFIG_VALUE', 2, 3],
    ['a key number beyond 15', 'auth 16\n16 crc\n', 'CONFIG_VALUE', 1, 6],
    ['a key number that is no number', 'auth 1\n1x crc\n', 'CONFIG_VALUE', 2, 1],
    ['auth without a number', 'auth\n', 'CONFIG_SYNTAX', 1, 5],
    ['auth with two numbers', 'auth 1 2\n', 'CONFIG_SYNTAX', 1, 8],
    ['a key without a method', 'auth 1\n1\n', 'CONFIG_SYNTAX', 2, 2],
    ['a line that is neither', 'auth 1\nkey 1 crc\n', 'CONFIG_SYNTAX', 2, 1],
    ['a control character', 'auth 1\n1 sha1 se\u0000cret\n', 'CONFIG_SYNTAX', 2, 10],
  ];
  for (const [name, text, code, line, col] of cases) {
    it(name, () => {
      assert.throws(
        () => parse(text),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, String(err));
          assert.deepEqual([err.code, err.pos?.line, err.pos?.col], [code, line, col], err.message);
          assert.ok(err.message.startsWith(`${file}:${line}:${col}: expected `), err.message);
          return true;
        },
      );
    });
  }

  it('never puts a secret in an error message', () => {
    assert.throws(
      () => parse('auth 1\n1 sha1 topsecret extra\n'),
      (err: unknown) => err instanceof ConfigError && !err.message.includes('topsecret'),
    );
    assert.throws(
      () => parse('auth 1\n1 crc topsecret\n'),
      (err: unknown) => err instanceof ConfigError && !err.message.includes('topsecret'),
    );
  });
});

describe('authkeys: fuzz', () => {
  it('never throws anything but ConfigError on mutated fixtures', async () => {
    for (const fixture of ['seed/authkeys', 'seed-sha1/authkeys']) {
      const text = await readHaFixture(fixture);
      fuzzParser(text, (t) => parse(t));
    }
  });
});
