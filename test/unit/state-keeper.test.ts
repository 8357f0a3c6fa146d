import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StateKeeper, type KeptItem } from '../../src/state-keeper.js';
import { loggedEvents } from '../helpers/log-capture.js';

const EVENTS = { missing: 'thing-missing', failed: 'thing-failed', recovered: 'thing-recovered', resynced: 'thing-resynced' };

function keeper(): StateKeeper {
  return new StateKeeper({ resyncSeconds: 1, what: 'things', keysField: 'keys', events: EVENTS });
}

/** An item that records its writes and checks in `ops`; `state.present` says whether a check finds it in place. */
function item(key: string, ops: string[], state: { present: boolean; gate?: Promise<void>; fail?: string } = { present: true }): KeptItem {
  return {
    key,
    write: async () => {
      ops.push(`write ${key}`);
      if (state.fail) throw new Error(state.fail);
    },
    check: async () => {
      ops.push(`check ${key}`);
      await state.gate;
      return state.present ? undefined : { fields: { key }, message: `${key} went missing` };
    },
  };
}

describe('StateKeeper (the periodic check behind the iptables rules and the blackhole route)', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('a desired state applied while a check is in flight waits for it: the old item is never written after the new one', async () => {
    loggedEvents();
    const ops: string[] = [];
    let releaseCheck!: () => void;
    const gate = new Promise<void>((resolve) => (releaseCheck = resolve));
    const k = keeper();
    await k.apply([item('198.19.7.0/24', ops, { present: false, gate })]);
    // The resync starts and blocks inside the old item's check.
    await vi.advanceTimersByTimeAsync(1000);
    expect(ops).toEqual(['write 198.19.7.0/24', 'check 198.19.7.0/24']);
    // The lease moves meanwhile.
    const applied = k.apply([item('198.19.8.0/24', ops)]);
    await vi.advanceTimersByTimeAsync(0);
    expect(ops).toEqual(['write 198.19.7.0/24', 'check 198.19.7.0/24']);
    releaseCheck();
    expect(await applied).toEqual(new Map());
    // The check that was under way finished first; from then on only the new item is checked.
    expect(ops).toEqual(['write 198.19.7.0/24', 'check 198.19.7.0/24', 'write 198.19.7.0/24', 'write 198.19.8.0/24']);
    await vi.advanceTimersByTimeAsync(2000);
    expect(ops.slice(4)).toEqual(['check 198.19.8.0/24', 'check 198.19.8.0/24']);
    await k.stop();
  });

  it('reports a lasting failure once, not at every resync, and its end once', async () => {
    const logged = loggedEvents();
    const ops: string[] = [];
    const state = { present: true, fail: 'refused' as string | undefined };
    const k = keeper();
    const failed = await k.apply([item('a', ops, state)]);
    expect([...failed.keys()]).toEqual(['a']);
    k.report();
    await vi.advanceTimersByTimeAsync(3000);
    // Each resync tried to write it again, but the same failure is not logged again.
    expect(ops).toEqual(['write a', 'write a', 'write a', 'write a']);
    expect(logged.events()).toEqual(['error thing-failed']);
    state.fail = undefined;
    await vi.advanceTimersByTimeAsync(3000);
    expect(logged.events()).toEqual(['error thing-failed', 'info thing-recovered']);
    // Back in place: checked, not written.
    expect(ops.slice(5)).toEqual(['check a', 'check a']);
    await k.stop();
  });

  it('writes back an item that went missing, with one warning naming it', async () => {
    const logged = loggedEvents();
    const ops: string[] = [];
    const state = { present: true };
    const k = keeper();
    await k.apply([item('a', ops, state)]);
    state.present = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(ops).toEqual(['write a', 'check a', 'write a']);
    expect(logged.events()).toEqual(['warn thing-missing']);
    await k.stop();
    await vi.advanceTimersByTimeAsync(3000);
    expect(ops).toHaveLength(3);
  });

  it('ends every resync with one debug event naming the keys still failing, so a reader counts resyncs, not seconds', async () => {
    loggedEvents();
    const debug = loggedEvents(['debug']);
    const state = { present: true, fail: 'refused' as string | undefined };
    const k = keeper();
    await k.apply([item('a', [], state), item('b', [])]);
    expect(debug.fields()).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    state.fail = undefined;
    await vi.advanceTimersByTimeAsync(1000);
    expect(debug.fields()).toEqual([
      { event: 'thing-resynced', keys: ['a'] },
      { event: 'thing-resynced', keys: [] },
    ]);
    await k.stop();
  });
});
