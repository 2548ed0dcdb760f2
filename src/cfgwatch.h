/*
 * cfgwatch.h — notices when a configuration file's content changes (--authentication-config), the way kubelet
 * changes a mounted ConfigMap: the path is a symlink to "..data/<file>", and kubelet swaps the "..data"
 * symlink to a new directory atomically. stat() follows the symlinks, so the identity behind the path (device,
 * inode, size, mtime, ctime) changes with the swap; an in-place edit changes size or mtime.
 *
 * cfgwatch_poll() is cheap when nothing changed (one stat()); when the identity changed it reads the file (at
 * most CFGWATCH_MAX_BYTES) and compares it with the content it saw last, so a swap to identical content (kubelet
 * re-projecting, a touch) is not a change. A path that cannot be stat()ed or read counts as one change (the
 * caller's reload then fails and says why) and is not reported again until it reads differently.
 *
 * Owns: the path copy and the last content seen. Main thread only (blocking local file I/O, like the reload it
 * triggers); never called on a thread that serves HAProxy.
 */
#ifndef KOS_CFGWATCH_H
#define KOS_CFGWATCH_H

#include <stdbool.h>
#include <stddef.h>

#define CFGWATCH_MAX_BYTES (1u << 20) /* = AUTHCFG_MAX_BYTES: a larger file is refused by the parser anyway */

typedef struct cfgwatch cfgwatch;

/* Records path's current identity and content (an unreadable file is recorded as such). 0, or -1 when out of
 * memory. */
int cfgwatch_create(const char *path, cfgwatch **out);
/* 1 when the content (or readability) differs from the last poll's or create's, 0 when not. Then records the
 * new state. Main thread. */
int cfgwatch_poll(cfgwatch *w);
/* Bytes of the last content seen (0 when unreadable). */
size_t cfgwatch_size(const cfgwatch *w);
/* NULL is fine. */
void cfgwatch_destroy(cfgwatch *w);

#endif
