/* The process-wide token cache: expiry, refresh margin, single-flight,
 * serve-stale, fail-fast after a refused credential, an hourly exchange cap.
 * Plain C: the binding supplies the exchange and the store as callbacks. */
#ifndef DUCKY_TOKEN_H
#define DUCKY_TOKEN_H

#include <stddef.h>

#include "err.h"

/* The longest token ducky takes: from an answer, a file or a store. */
#define DUCKY_MAX_TOKEN 16384

/* A client's private copy of its key's current token. */
typedef struct ducky_tokref {
	char *token;
	size_t len, cap;
	unsigned long gen; /* the cache generation it was copied from; 0: none */
	double expires;    /* ducky_now() seconds */
} ducky_tokref;

/* A token fresh from an exchange or read from a store. */
typedef struct ducky_fresh {
	char *token;       /* malloc'd; the cache takes it over */
	double lifetime;   /* seconds the token was issued for */
	double expires_at; /* wall-clock seconds */
} ducky_fresh;

typedef enum { DUCKY_SRC_MEMORY, DUCKY_SRC_EXCHANGE, DUCKY_SRC_STORE } ducky_source;

typedef struct ducky_token_ops {
	void *ud;
	/* 0 with out filled, or -1 with err; *sent: the attempts that reached the network. */
	int (*exchange)(void *ud, ducky_fresh *out, int *sent, ducky_err *err);
	/* Optional shared store (lock and unlock optional too), each given a
	 * deadline (ducky_now() seconds) it should keep: load returns 1 with out
	 * filled, or 0; drop removes key's token (ducky_token_invalidate compares
	 * first); lock returns 1 once this caller may exchange for key (trying
	 * until the deadline; once, if it has passed), 0 if not (the exchange then
	 * goes ahead unlocked). */
	int (*load)(void *ud, const char *key, double deadline, ducky_fresh *out);
	void (*store)(void *ud, const char *key, const ducky_fresh *tok, double deadline);
	void (*drop)(void *ud, const char *key, double deadline);
	int (*lock)(void *ud, const char *key, double deadline);
	void (*unlock)(void *ud, const char *key, double deadline);
} ducky_token_ops;

typedef struct ducky_token_conf {
	double refresh_margin; /* seconds; capped at half a token's life */
	double auth_backoff;   /* seconds to fail fast after a refused credential */
	int max_per_hour;      /* exchanges per key per hour */
	double deadline;       /* ducky_now() seconds: how long a waiter waits */
} ducky_token_conf;

typedef struct ducky_token_info {
	ducky_source source;
	double seconds_left;
	const char *stale; /* non-NULL: a failed refresh left us on the old token, and why
	                      (a static string) */
} ducky_token_info;

/* Makes ref hold a usable token for key, fetching it if needed. */
int ducky_token_get(const char *key, const ducky_token_conf *conf, const ducky_token_ops *ops,
                    ducky_tokref *ref, ducky_token_info *info, ducky_err *err);

/* Drops key's token; with only_token, only if the cache still holds that very token.
 * Returns 1 if something was dropped. */
int ducky_token_invalidate(const char *key, const char *only_token, const ducky_token_ops *ops,
                           double deadline);

/* Checks the fields of a token answer. */
int ducky_token_validate(const char *token, size_t len, const char *type, double expires_in,
                         ducky_err *err);

/* A token's lifetime as the cache keeps it (absurd claims are capped). */
double ducky_token_lifetime(double expires_in);

void ducky_tokref_free(ducky_tokref *ref);

#endif
