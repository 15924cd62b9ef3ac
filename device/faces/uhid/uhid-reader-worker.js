/**
 * The /dev/uhid reader thread of the uhid face (device/faces/uhid/uhid.ts). It does nothing but blocking reads of
 * whole `struct uhid_event`s into a SharedArrayBuffer ring, so the kernel's queue is drained at once: the kernel
 * keeps only 32 UHID_OUTPUT events and silently drops the rest ("Output queue is full"), and a client writes a
 * long message's reports back to back. A blocking read must not run on the main thread or the libuv pool (it
 * would pin a pool thread for good).
 *
 * Plain JavaScript on purpose: worker threads do not inherit the tsx loader, so this file must run as is.
 *
 * workerData: { fd, ring: SharedArrayBuffer, ctrl: SharedArrayBuffer, slots, slotSize, eventSize, index }
 *   ring slot i = [u32 LE byte count][event bytes]; ctrl = Int32Array with
 *   index.head (events written), index.tail (events consumed, advanced by the main thread), index.stop (set by
 *   the main thread: exit after the next event), index.exited (set here on exit), index.errno (set on a failed read).
 * The main thread wakes this thread out of a blocking read by making the kernel queue an event (UHID_DESTROY
 * queues UHID_STOP for a started device).
 */
import { readSync } from 'node:fs';
import { workerData } from 'node:worker_threads';

const { fd, ring, slots, slotSize, eventSize, index } = workerData;
const ctrl = new Int32Array(workerData.ctrl);
const bytes = new Uint8Array(ring);
const view = new DataView(ring);

function run() {
  for (;;) {
    const head = Atomics.load(ctrl, index.head);
    // Ring full: wait for the main thread to consume (re-checking the stop flag now and then).
    while (((head - Atomics.load(ctrl, index.tail)) | 0) >= slots) {
      if (Atomics.load(ctrl, index.stop)) return;
      Atomics.wait(ctrl, index.tail, Atomics.load(ctrl, index.tail), 100);
    }
    const slot = (head >>> 0) % slots;
    let n;
    try {
      n = readSync(fd, bytes, slot * slotSize + 4, eventSize, null);
    } catch (err) {
      if (err && (err.code === 'EINTR' || err.code === 'EAGAIN')) continue;
      Atomics.store(ctrl, index.errno, typeof err?.errno === 'number' ? Math.abs(err.errno) || 1 : 1);
      return;
    }
    if (n <= 0) {
      Atomics.store(ctrl, index.errno, 1);
      return;
    }
    view.setUint32(slot * slotSize, n, true);
    Atomics.store(ctrl, index.head, (head + 1) | 0);
    Atomics.notify(ctrl, index.head);
    if (Atomics.load(ctrl, index.stop)) return;
  }
}

try {
  run();
} finally {
  Atomics.store(ctrl, index.exited, 1);
  // Wake the main thread's waitAsync on head so it notices the exit.
  Atomics.add(ctrl, index.head, 0);
  Atomics.notify(ctrl, index.head);
}
