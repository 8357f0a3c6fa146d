import { describe, expect, it } from 'vitest';
import { PeerSync, type PeerDriver } from '../../src/backend/peer-sync.js';
import { formatIpv4Net, parseIpv4Net, type Ipv4Net } from '../../src/ip/ipv4.js';
import { loggedEvents } from '../helpers/log-capture.js';

/** A driver whose kernel read fails while `broken.now` is set; otherwise it records the subnets each pass ensures. */
function driver(broken: { now: boolean }, ensured: string[]): PeerDriver<string> {
  return {
    pass: async (fn) => {
      if (broken.now) throw new Error('netlink: ENOBUFS');
      return fn({
        ensure: async (subnet: Ipv4Net) => {
          ensured.push(formatIpv4Net(subnet));
          return 1;
        },
        remove: async () => 0,
        removeUnclaimed: async () => 0,
      });
    },
  };
}

describe('PeerSync', () => {
  it('a failed pass is one error line, however many lease events it served; none rejects, and the next pass retries them all', async () => {
    const logged = loggedEvents(['error']);
    const broken = { now: true };
    const ensured: string[] = [];
    const sync = new PeerSync(driver(broken, ensured), 'test peers');
    const subnets = ['198.19.1.0/24', '198.19.2.0/24', '198.19.3.0/24'];
    await expect(Promise.all(subnets.map((s) => sync.set(parseIpv4Net(s), 'want')))).resolves.toBeDefined();
    expect(logged.events()).toEqual(['error peer-sync-failed']);
    expect(ensured).toEqual([]);

    broken.now = false;
    await sync.set(parseIpv4Net('198.19.4.0/24'), 'want');
    expect(ensured.sort()).toEqual([...subnets, '198.19.4.0/24']);
    expect(logged.events()).toEqual(['error peer-sync-failed']);
    await sync.close();
  });
});
