/* The C API plait._ipc._robust exports in its capsule ``_C_API`` (see _robust.c): a shared
 * Lock's uncontended take and give, for plait._fastlock's shared ``_inner``. Both answer 1
 * (done), 0 (not here: held / waiters to ring / not held) or -errno from trylock (EBUSY,
 * EOWNERDEAD: the caller's Python path settles it). Bump the version with any change. */
#ifndef PLAIT_ROBUST_API_H
#define PLAIT_ROBUST_API_H

#include <pthread.h>

#define PLAIT_ROBUST_API_VERSION 1
#define PLAIT_ROBUST_CAPSULE "plait._ipc._robust._C_API"

typedef struct {
    int version;
    int (*take)(pthread_mutex_t *mutex, long long *holder, long long tag);
    int (*give)(pthread_mutex_t *mutex, long long *holder, long long *table);
} PlaitRobustAPI;

#endif
