import { createRtNetlink } from 'netlink';

const RTNLGRP_LINK = 1;
const RTM_DELLINK = 17;
/** struct ifinfomsg: family(1) pad(1) type(2) index(4) ... */
const IFINFOMSG_INDEX_OFFSET = 4;

/**
 * Calls `onDeleted` once when the link with `index` is deleted (by an operator, or with the external interface it
 * hangs off), from the kernel's own link notifications: no polling. The socket does not keep the process alive.
 * Returns a function that stops watching.
 */
export function watchLinkDeletion(index: number, onDeleted: () => void): () => void {
  const nl = createRtNetlink();
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    nl.socket.close();
  };
  nl.socket.on('message', (msgs) => {
    for (const m of msgs) {
      if (m.type === RTM_DELLINK && m.data.length >= IFINFOMSG_INDEX_OFFSET + 4 && m.data.readInt32LE(IFINFOMSG_INDEX_OFFSET) === index) {
        stop();
        onDeleted();
        return;
      }
    }
  });
  nl.socket.addMembership(RTNLGRP_LINK);
  nl.socket.unref();
  return stop;
}
