import { describe, expect, it } from 'vitest';
import { datapathQueues } from '../../src/backend/udp/udp-backend.js';
import { MAX_QUEUES } from '../../src/datapath/native.js';
import { parseFlags } from '../../src/cli/flags.js';

describe('udp datapath queue count', () => {
  it('chooses one queue per two CPUs, at least one and at most 16', () => {
    expect([1, 2, 3, 4, 8, 9, 64].map((cpus) => datapathQueues(0, cpus))).toEqual([1, 1, 1, 2, 4, 4, MAX_QUEUES]);
  });

  it('takes an explicit count as given, capped at 16', () => {
    expect(datapathQueues(3, 2)).toBe(3);
    expect(datapathQueues(40, 2)).toBe(MAX_QUEUES);
  });

  it('reads --queues and FLANNELD_QUEUES, refusing counts outside 0..MAX_QUEUES', () => {
    expect(parseFlags([]).queues).toBe(0);
    expect(parseFlags(['--queues', '4']).queues).toBe(4);
    expect(parseFlags([], { FLANNELD_QUEUES: '2' }).queues).toBe(2);
    expect(parseFlags([`--queues=${MAX_QUEUES}`]).queues).toBe(MAX_QUEUES);
    expect(() => parseFlags([`--queues=${MAX_QUEUES + 1}`])).toThrow(
      `invalid value "${MAX_QUEUES + 1}" for --queues: expected a whole number from 0 to ${MAX_QUEUES}`,
    );
  });
});
