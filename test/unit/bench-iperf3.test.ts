import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bytesSentInWholeRun, IperfError, parseIperfJson, receivedGbps, receivedKpps } from '../../bench/iperf3-json.js';

// Real iperf 3.12 output with -O 1, trimmed to the fields the bench reads.
const fixture = (name: string) => readFileSync(join(import.meta.dirname, '..', 'fixtures', 'iperf3', name), 'utf8');

describe('iperf3 -J parsing', () => {
  it('reads TCP goodput as the receiver counted it over the measured seconds', () => {
    expect(receivedGbps(parseIperfJson(fixture('tcp-omit1.json')))).toBeCloseTo(15.1639, 3);
  });

  it('counts every byte of the whole run for CPU per GB, the omitted second included', () => {
    const json = parseIperfJson(fixture('tcp-omit1.json'));
    expect(bytesSentInWholeRun(json)).toBe(1962147840 + 2023751680 + 1773404160);
    expect(bytesSentInWholeRun(json)).toBeGreaterThan(json.end!.sum_sent!.bytes!);
  });

  it('takes the UDP rate from received bytes, not from lost_packets, which -O makes exceed packets', () => {
    const json = parseIperfJson(fixture('udp64-omit1.json'));
    expect(receivedKpps(json)).toBeCloseTo(14394048 / 64 / 1.995564 / 1000, 6);
    expect(receivedKpps(json)).toBeGreaterThan(0);
  });

  it("turns iperf3's own error, or output that is no JSON, into an IperfError that says so", () => {
    expect(() => parseIperfJson('{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}')).toThrow(
      new IperfError('iperf3: unable to connect to server: Connection refused'),
    );
    expect(() => parseIperfJson('iperf3: error - unable to connect')).toThrow(/printed no JSON: iperf3: error - unable to connect/);
  });

  it('gives NaN, not zero, for a figure the output lacks', () => {
    expect(receivedGbps({})).toBeNaN();
    expect(receivedKpps({ end: {} })).toBeNaN();
    expect(bytesSentInWholeRun({ intervals: [] })).toBeNaN();
  });
});
