/* The C API plait._ipc._robust exports in its capsule ``_C_API`` (see _robust.c): a shared
 * Lock's uncontended take and give, for plait._fastlock's shared ``_inner``, and this
 * process's tag (0 until plait._sync._robust sets it; renewed in a forked child). take and
 * give answer 1 (done), 0 (not here: held / waiters to ring / not held) or -errno from
 * trylock (EBUSY, EOWNERDEAD: the caller's Python path settles it). Bump the version with
 * any change. */
#ifndef PLAIT_ROBUST_API_H
#define PLAIT_ROBUST_API_H

#include <pthread.h>

#define PLAIT_ROBUST_API_VERSION 2
#define PLAIT_ROBUST_CAPSULE "plait._ipc._robust._C_API"

typedef struct {
    int version;
    int (*take)(pthread_mutex_t *mutex, long long *holder, long long tag);
    int (*give)(pthread_mutex_t *mutex, long long *holder, long long *table);
    const long long *process_tag;
} PlaitRobustAPI;

#endif
