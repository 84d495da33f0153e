// The [api] table of tstack.toml: how `tstack run` splits a program's sockets between the
// stack and the kernel (docs/configuration.md, docs/run.md).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from '../../src/runtime/config.js';

function fails(text: string): ConfigError {
  try {
    parseConfig(text, 'api.toml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the config to be rejected');
}

describe('config [api]', () => {
  test('defaults to kernel_fallback "auto" with no extra kernel prefixes', () => {
    assert.deepEqual(parseConfig('', 'api.toml').api, { kernelFallback: 'auto', kernel: [], sameHost: true });
  });

  test('reads kernel_fallback and the kernel prefix list', () => {
    const c = parseConfig('[api]\nkernel_fallback = "loopback"\nkernel = ["10.0.0.0/8", "192.0.2.0/24"]\n', 'api.toml');
    assert.deepEqual(c.api, { kernelFallback: 'loopback', kernel: ['10.0.0.0/8', '192.0.2.0/24'], sameHost: true });
    assert.equal(parseConfig('[api]\nkernel_fallback = "never"\n', 'api.toml').api.kernelFallback, 'never');
  });

  test('an unknown kernel_fallback names the key, the line and the choices', () => {
    const e = fails('[stack]\npoll = "busy"\n[api]\nkernel_fallback = "sometimes"\n');
    assert.equal(e.line, 4);
    assert.equal(e.key, 'api.kernel_fallback');
    assert.match(e.message, /^api\.toml:4: key 'api\.kernel_fallback': must be one of "auto", "loopback", "never" \(got "sometimes"\)$/);
  });

  test('kernel must be an array of IPv4 prefixes', () => {
    const notArray = fails('[api]\nkernel = "10.0.0.0/8"\n');
    assert.equal(notArray.key, 'api.kernel');
    assert.equal(notArray.line, 2);
    assert.match(notArray.message, /must be an array of IPv4 prefixes/);
    const badPrefix = fails('[api]\nkernel = ["10.0.0.0/8", "10.0.0.1"]\n');
    assert.equal(badPrefix.key, 'api.kernel');
    assert.match(badPrefix.message, /must be an IPv4 address with prefix length .*got "10\.0\.0\.1"/);
  });

  test('an unknown key in [api] is an error, and [api] is listed among the known tables', () => {
    assert.match(fails('[api]\nkernel_fallbak = "auto"\n').message, /key 'api\.kernel_fallbak': unknown key \(expected one of kernel_fallback, kernel, same_host\)/);
    assert.match(fails('[apu]\n').message, /expected one of .*\[api\]/);
  });

  test('same_host turns the kernel-loopback mirror of stack listeners off, and must be a boolean', () => {
    assert.equal(parseConfig('[api]\nsame_host = false\n', 'api.toml').api.sameHost, false);
    assert.match(fails('[api]\nsame_host = "no"\n').message, /api\.same_host.*must be true or false/);
  });
});
