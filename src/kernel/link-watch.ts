import { RTNLGRP_LINK, deletedLinkIndex, subscribeRtNetlink } from './netlink.js';

/**
 * Calls `onDeleted` once when the link with `index` is deleted (by an operator, or with the external interface it
 * hangs off), from the kernel's own link notifications: no polling. The socket does not keep the process alive.
 * Returns a function that stops watching.
 */
export function watchLinkDeletion(index: number, onDeleted: () => void): () => void {
  const nl = subscribeRtNetlink(RTNLGRP_LINK);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    nl.socket.close();
  };
  nl.socket.on('message', (msgs) => {
    if (msgs.some((m) => deletedLinkIndex(m) === index)) {
      stop();
      onDeleted();
    }
  });
  return stop;
}
