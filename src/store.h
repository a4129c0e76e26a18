/* The shared token store on disk: one small file per credential key under
 * $XDG_CACHE_HOME/ducky/ (or ~/.cache/ducky/), or one file the user names.
 * Directory 0700 and files 0600, owned by the user, opened without following
 * links, written atomically; an flock'ed lock file per key makes processes
 * exchange one at a time. Holds the token and its expiry, never the secret.
 * Anything odd makes the calls fail with a reason; the caller carries on from
 * memory. Plain C: no Lua. */
#ifndef DUCKY_STORE_H
#define DUCKY_STORE_H

#include "token.h"

/* Owns file, dir and the descriptors (closed by ducky_store_close). */
typedef struct ducky_file_store {
	char *file;    /* the user's file, or NULL: <dir>/<key>.token */
	char *dir;     /* directory path */
	int dirfd;     /* -1 until opened and checked */
	int lockfd;    /* the held lock, or -1 */
	long lock_pid; /* the process that took it: a child after fork() never lets it go */
} ducky_file_store;

/* path NULL: the per-user default directory. 0, or -1 with *reason. */
int ducky_store_init(ducky_file_store *s, const char *path, const char **reason);
void ducky_store_close(ducky_file_store *s);

/* 1 with out filled (out->token malloc'd), 0 with *reason (or NULL: no file). */
int ducky_store_load(ducky_file_store *s, const char *key, ducky_fresh *out, const char **reason);
int ducky_store_save(ducky_file_store *s, const char *key, const ducky_fresh *tok,
                     const char **reason);
/* Removes key's file (token.c compares before it drops). */
int ducky_store_drop(ducky_file_store *s, const char *key, const char **reason);
/* 1 once this process holds key's exchange lock; 0 at deadline or with *reason. */
int ducky_store_lock(ducky_file_store *s, const char *key, double deadline, const char **reason);
void ducky_store_unlock(ducky_file_store *s);

/* The back-off processes share after a failed exchange, kept in the lock file
 * by the holder of the lock: set it (until: wall clock; 0 clears; kind: the
 * failure's, a word), and read it: the time (0: none, or another key's) and
 * kind into kind. The line names the key: a user-named file (and so its lock)
 * may serve two credentials, each with its own back-off. */
int ducky_store_backoff_set(ducky_file_store *s, const char *key, double until, const char *kind);
double ducky_store_backoff_get(ducky_file_store *s, const char *key, char kind[17]);

/* Parses a token file's text for key: 1 with out filled (out->token malloc'd);
 * 0 with *reason for garbage, or with *reason NULL for another key's token. */
int ducky_store_parse(const char *text, const char *key, ducky_fresh *out, const char **reason);

#endif
