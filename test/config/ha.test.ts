// The three files together: loaded from one directory in Heartbeat's order, and haresources
// checked against the nodes of ha.cf.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.js';
import { loadHaConfig } from '../../src/config/ha.js';
import { makeConfigDir, removeConfigDirs } from '../helpers/ha-fixtures.js';

after(removeConfigDirs);

describe('ha config directory', () => {
  it('loads the seed story', async () => {
    const dir = await makeConfigDir('seed');
    const { config, warnings } = await loadHaConfig(dir);
    assert.equal(config.dir, dir);
    assert.equal(config.hacf.nodes.length, 2);
    assert.equal(config.authkeys.active.method, 'crc');
    assert.equal(config.resources.groups[0]?.node, 'server6.example.com');
    // ha.cf's warnings come first, then authkeys'.
    assert.deepEqual(
      warnings.map((w) => `${w.pos.file.slice(dir.length + 1)}:${w.pos.line}:${w.code}`),
      ['ha.cf:5:NOT_IMPLEMENTED', 'authkeys:3:SUSPICIOUS'],
    );
  });

  it('refuses a group whose node ha.cf does not list, at its place in haresources', async () => {
    const dir = await makeConfigDir('seed', { files: { haresources: '# one\nserver8.example.com httpd\n' } });
    await assert.rejects(loadHaConfig(dir), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(
        [err.code, err.pos?.file, err.pos?.line, err.pos?.col],
        ['CONFIG_SEMANTIC', join(dir, 'haresources'), 2, 1],
      );
      return true;
    });
  });

  it('refuses a group whose preferred node is the witness', async () => {
    const dir = await makeConfigDir('seed', {
      files: {
        'ha.cf':
          'node server6.example.com server7.example.com witness1\nwitness witness1\nbcast eth0\nauto_failback on\n',
        haresources: 'witness1 httpd\n',
      },
    });
    await assert.rejects(loadHaConfig(dir), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /the witness "witness1" \(it runs no groups\)/);
      assert.deepEqual([err.pos?.line, err.pos?.col], [1, 1]);
      return true;
    });
  });

  it('warns when there is no resource group', async () => {
    const dir = await makeConfigDir('seed', { files: { haresources: '# nothing yet\n' } });
    const { warnings } = await loadHaConfig(dir);
    assert.ok(warnings.some((w) => w.code === 'SUSPICIOUS' && w.pos.file === join(dir, 'haresources')));
  });

  it('refuses an authkeys readable by others before reading haresources', async () => {
    const dir = await makeConfigDir('seed', { authkeysMode: 0o640, files: { haresources: 'nonsense!\n' } });
    await assert.rejects(
      loadHaConfig(dir),
      (err: unknown) => err instanceof ConfigError && err.code === 'CONFIG_PERMISSION',
    );
  });
});
