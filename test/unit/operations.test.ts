import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Registry, Counter } from 'prom-client';
import { environmentLine } from '../../src/cli/cloud-config-command.js';
import { formatLeaseTable } from '../../src/cli/leases-command.js';
import { healthzRoute, metricsRoute, readyzRoute, serveHttp } from '../../src/health/http-server.js';
import { parseIpv4Net } from '../../src/ip/ipv4.js';
import { forwardRuleSet } from '../../src/iptables/forward.js';
import { masqRuleSet } from '../../src/iptables/ip-masq.js';
import { describeRule } from '../../src/iptables/iptables.js';
import { humanLine } from '../../src/log.js';

const NETWORK = parseIpv4Net('198.19.0.0/16');
const SUBNET = parseIpv4Net('198.19.5.0/24');

describe('masqRuleSet', () => {
  it('is flannel HEAD masqRules for the lease, in order, each with the flanneld masq comment, jump first in POSTROUTING', () => {
    const set = masqRuleSet(NETWORK, SUBNET, true);
    expect(set.rules.map(describeRule)).toEqual([
      '-t nat -A FLANNEL-POSTRTG -s 198.19.5.0/24 -d 198.19.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
      '-t nat -A FLANNEL-POSTRTG -s 198.19.0.0/16 -d 198.19.5.0/24 -m comment --comment "flanneld masq" -j RETURN',
      '-t nat -A FLANNEL-POSTRTG ! -s 198.19.0.0/16 -d 198.19.5.0/24 -m comment --comment "flanneld masq" -j RETURN',
      '-t nat -A FLANNEL-POSTRTG -s 198.19.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
      '-t nat -A FLANNEL-POSTRTG ! -s 198.19.0.0/16 -d 198.19.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
    ]);
    expect(describeRule(set.spec.jump)).toBe('-t nat -A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG');
    expect(set.spec.jumpAt).toBe('first');
  });

  it('leaves out --random-fully when asked (--ip-masq-fully-random-disable, or an iptables without it)', () => {
    const specs = masqRuleSet(NETWORK, SUBNET, false).rules.map((r) => r.spec.join(' '));
    expect(specs.filter((s) => s.endsWith('-j MASQUERADE'))).toHaveLength(2);
    expect(specs.some((s) => s.includes('--random-fully'))).toBe(false);
  });
});

describe('forwardRuleSet', () => {
  it('is flannel HEAD forwardRules for the Network, jump appended to FORWARD', () => {
    const set = forwardRuleSet(NETWORK);
    expect([set.spec.jump, ...set.rules].map(describeRule)).toEqual([
      '-t filter -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
      '-t filter -A FLANNEL-FWD -s 198.19.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
      '-t filter -A FLANNEL-FWD -d 198.19.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    ]);
    expect(set.spec.jumpAt).toBe('last');
  });
});

describe('environmentLine', () => {
  it('quotes the whole assignment, escaping backslashes and quotes and doubling % for systemd', () => {
    expect(environmentLine('FLANNELD_ETCD_PREFIX', '/coreos.com/network2')).toBe('Environment="FLANNELD_ETCD_PREFIX=/coreos.com/network2"');
    expect(environmentLine('FLANNELD_X', 'a b "c" \\d 50% $HOME')).toBe('Environment="FLANNELD_X=a b \\"c\\" \\\\d 50%% $HOME"');
  });
});

describe('formatLeaseTable', () => {
  it('pads every column but the last to its widest cell', () => {
    const table = formatLeaseTable([
      { subnet: '198.19.5.0/24', publicIp: '198.18.0.1', backend: 'udp', expires: '2026-11-26T08:00:00Z' },
      { subnet: '198.19.10.0/24', publicIp: '198.18.0.22', backend: '-', expires: 'never' },
    ]);
    expect(table.split('\n')).toEqual([
      'SUBNET           PUBLIC IP     BACKEND   EXPIRES',
      '198.19.5.0/24    198.18.0.1    udp       2026-11-26T08:00:00Z',
      '198.19.10.0/24   198.18.0.22   -         never',
      '',
    ]);
  });
});

describe('humanLine', () => {
  it('turns a pino JSON line into time, level, message and key=value fields, leaving out pid, hostname and name', () => {
    const json = JSON.stringify({ level: 40, time: Date.UTC(2026, 10, 25, 8, 16, 45), pid: 1, hostname: 'h', name: 'flanneld', msg: 'etcd unreachable', endpoint: 'http://198.18.0.254:2379', attempt: 3 });
    expect(humanLine(json)).toBe('08:16:45 WARN  etcd unreachable endpoint=http://198.18.0.254:2379 attempt=3');
  });

  it('passes a line that is not JSON through unchanged', () => {
    expect(humanLine('plain text')).toBe('plain text');
  });
});

describe('health HTTP server', () => {
  it('answers /healthz and /readyz from the verdicts it is given (with the reason on a 503), /metrics from the registry, 404 for anything else', async () => {
    const state = { live: { ok: false, reason: 'loop stuck' }, ready: { ok: false, reason: 'acquiring a subnet lease' } as { ok: boolean; reason?: string } };
    const registry = new Registry();
    const renewals = new Counter({ name: 'flannel_test_renewals_total', help: 'test', registers: [registry] });
    const server = await serveHttp('127.0.0.1', 0, {
      '/healthz': healthzRoute(() => state.live),
      '/readyz': readyzRoute(() => state.ready),
      '/metrics': metricsRoute(registry),
    });
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const get = async (path: string) => {
        const res = await fetch(`${base}${path}`);
        return `${res.status} ${await res.text()}`;
      };
      expect(await get('/healthz')).toBe('503 flanneld is not running: loop stuck\n');
      expect(await get('/readyz')).toBe('503 flanneld is not ready yet: acquiring a subnet lease\n');
      state.live = { ok: true, reason: '' };
      state.ready = { ok: true };
      expect(await get('/healthz')).toBe('200 flanneld is running\n');
      expect(await get('/readyz')).toBe('200 flanneld is ready\n');
      renewals.inc(3);
      expect(await get('/metrics')).toMatch(/^flannel_test_renewals_total 3$/m);
      expect((await fetch(`${base}/other`)).status).toBe(404);
      expect((await fetch(`${base}/healthz`, { method: 'POST' })).status).toBe(404);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
