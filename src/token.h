/* The process-wide token cache: expiry and refresh margin, single-flight,
 * serve-stale, back-off after failures, fail-fast after a refused credential,
 * an hourly cap on successful exchanges (DESIGN "Token rules").
 *
 * It never blocks and never fetches: a caller asks (ducky_token_acquire) and is
 * told to use the token, to lead a fetch, to wait, or that it fails. A leader
 * fetches however it likes (engine.c, fetch.c) and reports with
 * ducky_token_settle, which wakes every waiter of the key. Plain C. */
#ifndef DUCKY_TOKEN_H
#define DUCKY_TOKEN_H

#include <pthread.h>
#include <stddef.h>

#include "err.h"

/* The longest token ducky takes: from an answer, a file or a store. */
#define DUCKY_MAX_TOKEN 16384
/* Back-off after a failed fetch: full jitter over min(CAP, BASE * 2^(n-1)) seconds. */
#define DUCKY_BACKOFF_BASE 1.0
#define DUCKY_BACKOFF_CAP  30.0

/* A client's private copy of its key's current token. Owns token (wiped on free). */
typedef struct ducky_tokref {
	char *token;
	size_t len, cap;
	unsigned long gen; /* the cache generation it was copied from; 0: none */
	double expires;    /* ducky_now() seconds */
} ducky_tokref;

/* A token fresh from an exchange or read from a store. Owns token (malloc'd;
 * the cache takes it over when it publishes it). */
typedef struct ducky_fresh {
	char *token;
	double lifetime;   /* seconds the token was issued for */
	double expires_at; /* wall-clock seconds */
} ducky_fresh;

typedef enum { DUCKY_SRC_MEMORY, DUCKY_SRC_EXCHANGE, DUCKY_SRC_STORE } ducky_source;

typedef struct ducky_token_conf {
	double refresh_margin; /* seconds; capped at half a token's life */
	double auth_backoff;   /* seconds to fail fast after a refused credential */
	int max_per_hour;      /* successful (and refused) exchanges per key per hour */
} ducky_token_conf;

/* Who asks: one per engine (not owned by the cache). The cache writes to fd
 * when a fetch the engine waits for settles. An engine that leads a fetch
 * steps at least every DUCKY_HEARTBEAT seconds while it is driven; a fetch
 * whose engine has not stepped for DUCKY_STALL seconds (nobody drives it, or
 * a blocking call of its own thread waits for it) may be led again by a
 * waiter, so that nobody waits on a fetch that cannot move. */
#define DUCKY_HEARTBEAT 0.5
#define DUCKY_STALL     1.5
typedef struct ducky_waker {
	int fd;                         /* written to (an eventfd's 1) to wake the engine */
	_Atomic long long last_step_ms; /* ducky_now() of its last step, in ms */
} ducky_waker;

/* The engine of w steps now (in this thread); NULL when its step ends. A
 * callback inside that step that asks for a token that engine is fetching is
 * answered at once (the current token, or a config error) instead of waiting. */
void ducky_token_stepping(ducky_waker *w);

typedef struct ducky_token_info {
	ducky_source source;
	double seconds_left;
} ducky_token_info;

typedef enum {
	DUCKY_TOK_HIT,  /* ref holds a usable token */
	DUCKY_TOK_LEAD, /* fetch, then ducky_token_settle */
	DUCKY_TOK_WAIT, /* another caller fetches; w is woken when it settles: ask again */
	DUCKY_TOK_FAIL  /* err set */
} ducky_tok_rc;

/* One caller's ask: its engine's waker, itself (the operation that would lead),
 * and which fetch it waits for (0 on its first ask; the cache keeps it there, so
 * that a waiter gets that fetch's failure instead of leading another). */
typedef struct ducky_asker {
	const char *key;
	const ducky_token_conf *conf;
	ducky_waker *w;
	const void *who;
	unsigned long seen;
} ducky_asker;

/* While the key's token is valid, only the asker that leads a refresh waits
 * for it; every other one is served the current token. */
ducky_tok_rc ducky_token_acquire(ducky_asker *a, ducky_tokref *ref, ducky_token_info *info,
                                 ducky_err *err);

/* What a leader's fetch gave. */
typedef enum {
	DUCKY_FETCH_TOKEN,     /* fresh holds a token from src */
	DUCKY_FETCH_KEEP,      /* another process exchanges; the token in hand is still valid */
	DUCKY_FETCH_FAILED,    /* err */
	DUCKY_FETCH_ABANDONED, /* the leader went away: nothing learnt, another may lead */
} ducky_fetch_kind;

typedef struct ducky_fetch_result {
	ducky_waker *w; /* the leader's engine */
	ducky_fetch_kind kind;
	ducky_source src;
	ducky_fresh fresh;     /* DUCKY_FETCH_TOKEN: taken over */
	ducky_fresh candidate; /* a valid stored token inside its margin, served while the
	                          fetch failed (taken over, or wiped) */
	const ducky_err *err;  /* DUCKY_FETCH_FAILED */
	double retry_after;    /* seconds the endpoint asked for, < 0: none */
	/* out: why the current token is served stale after the fetch, or NULL (a
	 * static string); the generation published, 0: none */
	const char *stale;
	unsigned long gen;
	double next_try; /* out: seconds until the next fetch may go (after a failure) */
} ducky_fetch_result;

void ducky_token_settle(const char *key, const ducky_token_conf *conf, ducky_fetch_result *res);

/* Drops key's token from memory; with only_token, only if the cache still holds
 * that very token, and not if that token was published less than a back-off
 * step ago after an earlier such drop (a burst of 401s refreshes once per step).
 * Returns 1 if dropped, 0 if there was nothing to drop, -1 if paced.
 * *rejected_until: wall clock when the dropped token would have expired. */
int ducky_token_invalidate(const char *key, const char *only_token, double *rejected_until);

/* Seconds key's token has left in memory (<= 0: none or expired). */
double ducky_token_left(const char *key);

/* The engine behind w goes away: it waits for nothing and leads nothing more
 * (its fetches, if any, must have been settled or abandoned first). */
void ducky_token_forget(ducky_waker *w);

#ifdef DUCKY_TEST_HOOKS
/* Test builds: every back-off step is this fraction of its cap (< 0: random). */
void ducky_token_fix_jitter(double fraction);
#endif

/* Checks the fields of a token answer. */
int ducky_token_validate(const char *token, size_t len, const char *type, double expires_in,
                         ducky_err *err);

/* A token's lifetime as the cache keeps it (absurd claims are capped). */
double ducky_token_lifetime(double expires_in);
/* The margin of conf for a token of that lifetime. */
double ducky_token_margin(const ducky_token_conf *conf, double lifetime);

/* The stored token f, read now: 1 if it is far enough from expiry to use; 0
 * if it is valid but inside its margin (kept in f: a candidate); -1 if it is
 * expired or absent (f's token forgotten). Fixes an absurd lifetime. */
int ducky_token_stored_use(const ducky_token_conf *conf, ducky_fresh *f);

void ducky_fresh_forget(ducky_fresh *f); /* wipes and frees the token */
void ducky_tokref_free(ducky_tokref *ref);

#endif
