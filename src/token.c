/* The process-wide token cache (see token.h). One mutex guards the registry;
 * nothing here blocks but on that mutex, and nothing here fetches. */
#include "token.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util.h"

#define MAX_LIFETIME (365.0 * 86400.0)
#define HOUR         3600.0
#define MIN_LEFT     1.0 /* seconds: a token with less on arrival is not used */

typedef struct entry {
	struct entry *next;
	char *key;
	/* the token */
	char *token; /* NULL: none */
	size_t len;
	unsigned long gen;
	double expires;   /* ducky_now() seconds */
	double lifetime;  /* seconds it was issued for */
	double published; /* ducky_now() when it came */
	/* the fetch under way */
	ducky_waker *leader;   /* NULL: none */
	const void *leader_op; /* the asker that leads (compared, never used) */
	unsigned long seq;     /* fetches settled */
	ducky_err last_err;    /* the last fetch's failure, for those who waited for it */
	ducky_waker **waiters;
	size_t nwait, capwait;
	/* after failures */
	double retry_at;       /* no fetch before this (shared back-off), 0: none */
	int failures;          /* in a row, for the back-off step */
	const char *stale;     /* why the token in hand is served stale, or NULL */
	double backoff_until;  /* a refused credential: fail fast until then */
	ducky_err backoff_err; /* ... with this */
	int rejections;        /* tokens dropped after a 401 in a row, for their pacing */
	double *hist;          /* times of counted exchanges in the last hour */
	size_t nhist, caphist;
} entry;

/* The one process-wide thing: every client, Lua state and thread shares it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry *registry;
static unsigned long generation;
static _Thread_local ducky_waker *stepping; /* the engine stepping in this thread */
static unsigned rng_state = 0x9e3779b9u;

void ducky_token_stepping(ducky_waker *w)
{
	stepping = w;
}

/* fork() with the registry's mutex held by another thread would leave the
 * child a mutex nobody unlocks: held across the fork, let go on both sides. */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void before_fork(void)
{
	pthread_mutex_lock(&lock);
}
static void after_fork(void)
{
	pthread_mutex_unlock(&lock);
}
/* In the child only the forking thread lives on, and every engine that leads
 * or waits is the parent's (its eventfd shared with it, or its number taken
 * by a file the child opens): forgotten, never woken from here. The forking
 * thread's own engines start over (engine.c) and ask again. */
static void child_after_fork(void)
{
	for (entry *e = registry; e; e = e->next) {
		e->leader = NULL;
		e->leader_op = NULL;
		e->nwait = 0;
	}
	pthread_mutex_unlock(&lock);
}
static void install_atfork(void)
{
	pthread_atfork(before_fork, after_fork, child_after_fork);
}

static entry *find(const char *key, int create)
{
	entry *e;
	for (e = registry; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	if (!create || !(e = calloc(1, sizeof *e)))
		return NULL;
	if (!(e->key = ducky_strdup(key))) {
		free(e);
		return NULL;
	}
	ducky_err_init(&e->last_err);
	ducky_err_init(&e->backoff_err);
	e->next = registry;
	registry = e;
	return e;
}

double ducky_token_margin(const ducky_token_conf *conf, double lifetime)
{
	return conf->refresh_margin < lifetime / 2 ? conf->refresh_margin : lifetime / 2;
}

#ifdef DUCKY_TEST_HOOKS
static double fixed_jitter = -1; /* test builds: a fixed fraction of the step, < 0: random */
void ducky_token_fix_jitter(double fraction)
{
	fixed_jitter = fraction;
}
#endif

/* Full jitter over the n-th step (called locked: the state is the cache's). */
static double backoff_step(int n)
{
	double cap = DUCKY_BACKOFF_BASE * ldexp(1.0, n > 1 ? (n < 16 ? n - 1 : 15) : 0);
	if (cap > DUCKY_BACKOFF_CAP)
		cap = DUCKY_BACKOFF_CAP;
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
#ifdef DUCKY_TEST_HOOKS
	if (fixed_jitter >= 0)
		return cap * fixed_jitter;
#endif
	return cap * ((double)rng_state / (double)UINT32_MAX);
}

/* Copies e's token into ref unless ref has it already. Called locked. */
static int copy_out(entry *e, ducky_tokref *ref, ducky_err *err)
{
	if (ref->gen != e->gen) {
		if (ref->cap < e->len + 1) {
			char *p = malloc(e->len + 1);
			if (!p)
				return ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
			ducky_wipe_free(ref->token, ref->cap);
			ref->token = p;
			ref->cap = e->len + 1;
		}
		memcpy(ref->token, e->token, e->len + 1);
		ref->len = e->len;
		ref->gen = e->gen;
	}
	ref->expires = e->expires;
	return 0;
}

static ducky_tok_rc serve(entry *e, double now, ducky_tokref *ref, ducky_token_info *info,
                          ducky_err *err)
{
	info->source = DUCKY_SRC_MEMORY;
	info->seconds_left = e->expires - now;
	return copy_out(e, ref, err) ? DUCKY_TOK_FAIL : DUCKY_TOK_HIT;
}

static int valid(const entry *e, double now)
{
	return e->token && e->expires > now;
}

static int refused_credential(const ducky_err *err)
{
	return err->kind == DUCKY_E_AUTH && err->code &&
	       (strcmp(err->code, "invalid_client") == 0 ||
	        strcmp(err->code, "access_denied") == 0 ||
	        strcmp(err->code, "unauthorized_client") == 0);
}

/* Why a refresh failed, as a string that outlives err: the RFC 6749 error
 * code when it is one, else the error kind. */
static const char *stale_reason(const ducky_err *err)
{
	static const char *const codes[] = {
	    "invalid_request",        "invalid_client", "invalid_grant", "unauthorized_client",
	    "unsupported_grant_type", "invalid_scope",  "access_denied", NULL};
	for (int i = 0; err->code && codes[i]; i++)
		if (strcmp(err->code, codes[i]) == 0)
			return codes[i];
	return ducky_kind_name(err->kind);
}

/* Counts e's counted exchanges in the last hour. */
static size_t recent(entry *e, double now)
{
	size_t i = 0, j;
	while (i < e->nhist && e->hist[i] <= now - HOUR)
		i++;
	for (j = 0; i < e->nhist; i++, j++)
		e->hist[j] = e->hist[i];
	return e->nhist = j;
}

static void count_exchange(entry *e, double now)
{
	if (e->nhist == e->caphist) {
		size_t cap = e->caphist ? e->caphist * 2 : 8;
		double *h = realloc(e->hist, cap * sizeof *h);
		if (!h)
			return; /* the cap is a safeguard; losing one count beats failing */
		e->hist = h;
		e->caphist = cap;
	}
	e->hist[e->nhist++] = now;
}

static int add_waiter(entry *e, ducky_waker *w)
{
	for (size_t i = 0; i < e->nwait; i++)
		if (e->waiters[i] == w)
			return 0;
	if (e->nwait == e->capwait) {
		size_t cap = e->capwait ? e->capwait * 2 : 4;
		ducky_waker **p = realloc(e->waiters, cap * sizeof *p);
		if (!p)
			return -1;
		e->waiters = p;
		e->capwait = cap;
	}
	e->waiters[e->nwait++] = w;
	return 0;
}

static void wake_all(entry *e)
{
	static const uint64_t one = 1;
	for (size_t i = 0; i < e->nwait; i++)
		if (write(e->waiters[i]->fd, &one, sizeof one) < 0) {
			/* a full eventfd counter is already readable: nothing lost */
		}
	e->nwait = 0;
}

static double since_step(const ducky_waker *w, double now)
{
	return now - (double)w->last_step_ms / 1000.0;
}

/* a becomes the leader; it is told of the failure of the fetch it leads */
static void lead(entry *e, ducky_asker *a)
{
	e->leader = a->w;
	e->leader_op = a->who;
	a->seen = e->seq + 1;
}

/* A caller while another fetches for the key. Called locked. */
static ducky_tok_rc while_fetching(entry *e, ducky_asker *a, double now, ducky_err *err)
{
	if (e->leader == stepping && e->leader != a->w) { /* from a callback of that fetch */
		ducky_fail(err, DUCKY_E_CONFIG,
		           "a token exchange for these credentials is under way in this thread: a "
		           "log or token_cache callback cannot wait for it");
		return DUCKY_TOK_FAIL;
	}
	if (e->leader != a->w && since_step(e->leader, now) > DUCKY_STALL) {
		lead(e, a); /* nobody moves that fetch: lead again */
		return DUCKY_TOK_LEAD;
	}
	if (add_waiter(e, a->w)) {
		ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
		return DUCKY_TOK_FAIL;
	}
	a->seen = e->seq + 1;
	return DUCKY_TOK_WAIT;
}

/* No valid token outside the margin, nobody fetching: the rules that may
 * refuse a fetch, else lead one. Called locked. */
static ducky_tok_rc may_lead(entry *e, ducky_asker *a, double now, ducky_tokref *ref,
                             ducky_token_info *info, ducky_err *err)
{
	const ducky_token_conf *conf = a->conf;
	const ducky_err *why = NULL;
	if (now < e->backoff_until) /* a refused credential: no exchange for a while */
		why = &e->backoff_err;
	else if (now < e->retry_at) /* failures: one try per back-off step */
		why = &e->last_err;
	if (why && why->kind != DUCKY_OK) {
		if (valid(e, now))
			return serve(e, now, ref, info, err);
		ducky_err_copy(err, why);
		return DUCKY_TOK_FAIL;
	}
	if (recent(e, now) >= (size_t)conf->max_per_hour) {
		if (valid(e, now))
			return serve(e, now, ref, info, err);
		ducky_fail(err, DUCKY_E_LIMIT,
		           "%d token exchanges in the last hour for this credential "
		           "(max_exchanges_per_hour); not making another",
		           conf->max_per_hour);
		return DUCKY_TOK_FAIL;
	}
	lead(e, a);
	return DUCKY_TOK_LEAD;
}

static ducky_tok_rc acquire_locked(entry *e, ducky_asker *a, ducky_tokref *ref,
                                   ducky_token_info *info, ducky_err *err)
{
	double now = ducky_now();
	int is_valid = valid(e, now);
	/* a valid token is served while it is outside the margin, and inside it
	 * between two tries and to everyone but the caller that refreshes it */
	if (is_valid && (e->expires - now > ducky_token_margin(a->conf, e->lifetime) ||
	                 now < e->retry_at || (e->leader && e->leader_op != a->who)))
		return serve(e, now, ref, info, err);
	if (a->seen && a->seen <= e->seq && e->last_err.kind != DUCKY_OK && !is_valid) {
		ducky_err_copy(err, &e->last_err); /* the fetch we waited for failed */
		return DUCKY_TOK_FAIL;
	}
	if (e->leader)
		return while_fetching(e, a, now, err);
	return may_lead(e, a, now, ref, info, err);
}

ducky_tok_rc ducky_token_acquire(ducky_asker *a, ducky_tokref *ref, ducky_token_info *info,
                                 ducky_err *err)
{
	ducky_tok_rc rc = DUCKY_TOK_FAIL;
	pthread_once(&atfork_once, install_atfork);
	pthread_mutex_lock(&lock);
	entry *e = find(a->key, 1);
	if (!e)
		ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
	else
		rc = acquire_locked(e, a, ref, info, err);
	pthread_mutex_unlock(&lock);
	return rc;
}

/* Makes f e's token. */
static unsigned long publish(entry *e, ducky_fresh *f, double now)
{
	double left = f->expires_at - ducky_wall();
	ducky_wipe_free(e->token, e->len);
	e->token = f->token;
	e->len = strlen(f->token);
	f->token = NULL;
	e->lifetime = f->lifetime;
	e->expires = now + (left < f->lifetime ? left : f->lifetime);
	e->published = now;
	return e->gen = ++generation;
}

/* A failed fetch: the back-off every caller of the key shares, the breaker
 * after a refused credential, and the best valid token to serve meanwhile. */
static void failed(entry *e, const ducky_token_conf *conf, ducky_fetch_result *res, double now)
{
	ducky_fresh *c = &res->candidate;
	if (c->token && c->expires_at - ducky_wall() > 0 &&
	    (!e->token || now + (c->expires_at - ducky_wall()) > e->expires))
		res->gen = publish(e, c, now); /* a stored token inside its margin beats nothing */
	if (refused_credential(res->err)) {    /* auth_backoff paces it, and it counts */
		count_exchange(e, now);
		e->backoff_until = now + conf->auth_backoff;
		ducky_err_clear(&e->backoff_err);
		ducky_err_copy(&e->backoff_err, res->err);
		e->retry_at = 0;
	} else { /* a transient failure: one back-off step for every caller */
		double wait = backoff_step(++e->failures);
		if (res->retry_after > wait)
			wait = res->retry_after < DUCKY_BACKOFF_CAP ? res->retry_after
			                                            : DUCKY_BACKOFF_CAP;
		e->retry_at = now + wait;
		res->next_try = wait;
	}
	ducky_err_copy(&e->last_err, res->err);
	e->stale = valid(e, now) ? stale_reason(res->err) : NULL;
	res->stale = e->stale;
}

static void settle_locked(entry *e, const ducky_token_conf *conf, ducky_fetch_result *res)
{
	double now = ducky_now();
	res->gen = 0;
	/* an exchange counts whoever led it, a fetch another caller took over too */
	if (res->kind == DUCKY_FETCH_TOKEN && res->src == DUCKY_SRC_EXCHANGE)
		count_exchange(e, now);
	if (e->leader != res->w) { /* a fetch another caller took over: its token only */
		res->stale = NULL;
		if (res->kind == DUCKY_FETCH_TOKEN) {
			res->gen = publish(e, &res->fresh, now);
			wake_all(e);
		}
		return;
	}
	e->leader = NULL;
	e->leader_op = NULL;
	e->seq++;
	ducky_err_clear(&e->last_err);
	res->stale = NULL;
	switch (res->kind) {
	case DUCKY_FETCH_TOKEN:
		res->gen = publish(e, &res->fresh, now);
		e->stale = NULL;
		if (e->expires - now < MIN_LEFT) { /* spent on arrival: a failure, paced as one */
			ducky_fail(&e->last_err, DUCKY_E_DECODE,
			           "the token endpoint's token expires in %.3g s: too soon to use",
			           e->expires - now);
			e->retry_at = now + backoff_step(++e->failures);
			break;
		}
		e->failures = 0;
		/* a store's token inside its margin: use it a while before trying again */
		e->retry_at = e->expires - now > ducky_token_margin(conf, e->lifetime)
		                  ? 0
		                  : now + backoff_step(1);
		break;
	case DUCKY_FETCH_KEEP:
		if (res->candidate.token && !valid(e, now))
			res->gen = publish(e, &res->candidate, now);
		e->retry_at = now + backoff_step(1);
		break;
	case DUCKY_FETCH_FAILED:
		failed(e, conf, res, now);
		break;
	case DUCKY_FETCH_ABANDONED:
		break;
	}
	ducky_fresh_forget(&res->candidate);
	wake_all(e);
}

void ducky_token_settle(const char *key, const ducky_token_conf *conf, ducky_fetch_result *res)
{
	pthread_mutex_lock(&lock);
	entry *e = find(key, 1);
	if (e)
		settle_locked(e, conf, res);
	pthread_mutex_unlock(&lock);
	ducky_fresh_forget(&res->fresh); /* not taken over: out of memory */
	ducky_fresh_forget(&res->candidate);
}

/* The age under which a 401 does not drop a token again: 0 for the first two
 * drops in a row, then a back-off step per drop. */
static double reject_pacing(int rejections)
{
	if (rejections <= 1) /* two tokens revoked one after the other happen */
		return 0;
	double step = DUCKY_BACKOFF_BASE * ldexp(1.0, rejections < 7 ? rejections - 2 : 5);
	return step < DUCKY_BACKOFF_CAP ? step : DUCKY_BACKOFF_CAP;
}

double ducky_token_left(const char *key)
{
	double left = 0;
	pthread_mutex_lock(&lock);
	entry *e = find(key, 0);
	if (e && e->token)
		left = e->expires - ducky_now();
	pthread_mutex_unlock(&lock);
	return left;
}

int ducky_token_invalidate(const char *key, const char *only_token, double *rejected_until)
{
	int rc = 0;
	*rejected_until = 0;
	pthread_mutex_lock(&lock);
	entry *e = find(key, 0);
	if (e && e->token && (!only_token || strcmp(e->token, only_token) == 0)) {
		double now = ducky_now(), age = now - e->published;
		if (only_token && age > 2 * reject_pacing(e->rejections) + 60)
			e->rejections = 0; /* it lived a while: the burst is over */
		if (only_token && age < reject_pacing(e->rejections)) {
			rc = -1;
		} else {
			*rejected_until = ducky_wall() + (e->expires - now);
			ducky_wipe_free(e->token, e->len);
			e->token = NULL;
			e->len = 0;
			e->gen = ++generation;
			e->rejections += only_token != NULL;
			e->retry_at = 0;
			rc = 1;
		}
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void ducky_token_forget(ducky_waker *w)
{
	pthread_mutex_lock(&lock);
	for (entry *e = registry; e; e = e->next) {
		for (size_t i = 0; i < e->nwait; i++)
			if (e->waiters[i] == w)
				e->waiters[i--] = e->waiters[--e->nwait];
		if (e->leader == w) { /* never settled: let another lead */
			e->leader = NULL;
			e->leader_op = NULL;
			e->seq++;
			wake_all(e);
		}
	}
	pthread_mutex_unlock(&lock);
}

int ducky_token_validate(const char *token, size_t len, const char *type, double expires_in,
                         ducky_err *err)
{
	if (!token || len == 0)
		return ducky_fail(err, DUCKY_E_DECODE, "token answer has no access_token");
	if (len > DUCKY_MAX_TOKEN)
		return ducky_fail(err, DUCKY_E_DECODE,
		                  "token answer's access_token is longer than %d bytes",
		                  DUCKY_MAX_TOKEN);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)token[i] < 0x21 || (unsigned char)token[i] > 0x7e)
			return ducky_fail(err, DUCKY_E_DECODE,
			                  "token answer's access_token holds a byte outside "
			                  "visible ASCII (at %zu)",
			                  i);
	if (!type || strcasecmp(type, "bearer") != 0)
		return ducky_fail(err, DUCKY_E_DECODE,
		                  "token answer's token_type is %s%.*s%s, not Bearer",
		                  type ? "\"" : "", ducky_utf8_fit(type ? type : "missing", 40),
		                  type ? type : "missing", type ? "\"" : "");
	if (!(expires_in > 0) || !isfinite(expires_in))
		return ducky_fail(err, DUCKY_E_DECODE,
		                  "token answer's expires_in is not a positive number");
	return 0;
}

double ducky_token_lifetime(double expires_in)
{
	return expires_in < MAX_LIFETIME ? expires_in : MAX_LIFETIME;
}

int ducky_token_stored_use(const ducky_token_conf *conf, ducky_fresh *f)
{
	double left = f->expires_at - ducky_wall();
	if (!f->token)
		return -1;
	if (f->lifetime <= 0 || f->lifetime > MAX_LIFETIME)
		f->lifetime = left < MAX_LIFETIME ? left : MAX_LIFETIME;
	if (left > ducky_token_margin(conf, f->lifetime))
		return 1;
	if (left > 0)
		return 0;
	ducky_fresh_forget(f);
	return -1;
}

void ducky_fresh_forget(ducky_fresh *f)
{
	ducky_wipe_str(f->token);
	f->token = NULL;
}

void ducky_tokref_free(ducky_tokref *ref)
{
	ducky_wipe_free(ref->token, ref->cap);
	memset(ref, 0, sizeof *ref);
}
