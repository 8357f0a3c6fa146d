import { describe, expect, it } from 'vitest';
import { healthzRoute } from '../../src/health/http-server.js';
import { LoopPulse, livenessOf } from '../../src/health/loop-pulse.js';

const GRACE = 30_000;

describe('loop liveness (what /healthz reads)', () => {
  it('a loop is live until its due turn plus the grace, then stale with a reason naming it', () => {
    const pulse = new LoopPulse('lease renewal', GRACE, 0);
    pulse.beat(60_000, 1_000);
    expect(pulse.stale(1_000 + 60_000 + GRACE)).toBeUndefined();
    expect(pulse.stale(1_000 + 60_000 + GRACE + 1)).toBe('the lease renewal loop has not turned for 90 s');
    // It turned again: live again, with the new deadline.
    pulse.beat(5_000, 100_000);
    expect(pulse.stale(100_000 + 5_000 + GRACE)).toBeUndefined();
  });

  it('a loop at rest (a watch with no events, a reservation) has no deadline', () => {
    const pulse = new LoopPulse('peer watch', GRACE, 0);
    expect(pulse.stale(10 * 24 * 3600_000)).toBeUndefined();
    pulse.beat(0, 0);
    pulse.rest(1_000);
    expect(pulse.stale(10 * 24 * 3600_000)).toBeUndefined();
  });

  it('liveness fails naming the stuck loop while the others turn, and /healthz answers 503 with it', async () => {
    const supervision = new LoopPulse('network supervision', 15_000, 0);
    const renewal = new LoopPulse('lease renewal', GRACE, 0);
    const watch = new LoopPulse('peer watch', GRACE, 0);
    supervision.beat(1_000, 0);
    renewal.beat(3_600_000, 0);
    watch.beat(0, 0); // an attempt to list and watch began, and never ended
    expect(livenessOf([supervision, renewal, watch, undefined], 10_000)).toEqual({ ok: true });
    const now = GRACE + 5_000;
    supervision.beat(1_000, now);
    expect(livenessOf([supervision, renewal, watch, undefined], now)).toEqual({ ok: false, reason: 'the peer watch loop has not turned for 35 s' });
    const res = await healthzRoute(() => livenessOf([supervision, renewal, watch], now))();
    expect(res).toMatchObject({ status: 503, body: 'flanneld is not running: the peer watch loop has not turned for 35 s\n' });
    watch.rest(now);
    expect((await healthzRoute(() => livenessOf([supervision, renewal, watch], now))()).status).toBe(200);
  });
});
