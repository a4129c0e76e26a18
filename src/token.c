/* The process-wide token cache. One mutex guards the registry; exchanges run
 * outside it, with one caller per key fetching while the others wait. */
#include "token.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

#define MAX_LIFETIME (365.0 * 86400.0)
#define STALE_RETRY  5.0 /* at most this long between refresh attempts inside the margin */

typedef struct entry {
	struct entry *next;
	char *key;
	char *token; /* NULL: none */
	size_t len;
	unsigned long gen;
	double expires; /* ducky_now() seconds */
	double lifetime;
	int fetching;
	pthread_t leader;   /* the thread fetching, while fetching */
	unsigned long seq;  /* completed fetches */
	ducky_err last_err; /* the last fetch's failure, for its waiters */
	double next_try;    /* no refresh before this while a valid token is served stale */
	double backoff_until;
	ducky_err backoff_err;
	double *hist; /* times of the exchanges of the last hour */
	size_t nhist, caphist;
} entry;

/* The one process-wide thing: every client, Lua state and thread shares it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done; /* a fetch completed, for any key */
static pthread_once_t done_once = PTHREAD_ONCE_INIT;
static entry *registry;
static unsigned long generation;

static void init_cond(void)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&done, &a);
	pthread_condattr_destroy(&a);
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

static double margin_for(const ducky_token_conf *conf, double lifetime)
{
	return conf->refresh_margin < lifetime / 2 ? conf->refresh_margin : lifetime / 2;
}

/* How long a caller that could not refresh goes on with the current token
 * before it tries again: a few tries inside the margin. */
static double retry_interval(const ducky_token_conf *conf, double lifetime)
{
	double m = margin_for(conf, lifetime) / 4;
	return m < STALE_RETRY ? m : STALE_RETRY;
}

/* A deadline for a store operation: a share of the time the call has left. */
static double budget(const ducky_token_conf *conf, double share)
{
	double now = ducky_now(), left = conf->deadline - now;
	return now + (left > 0 ? left * share : 0);
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

static void publish(entry *e, ducky_fresh *f, double now)
{
	double left = f->expires_at - ducky_wall();
	ducky_wipe_free(e->token, e->len);
	e->token = f->token;
	e->len = strlen(f->token);
	f->token = NULL;
	e->lifetime = f->lifetime;
	e->expires = now + (left < f->lifetime ? left : f->lifetime);
	e->gen = ++generation;
}

static int wait_for(unsigned long seq, entry *e, double deadline)
{
	while (e->fetching && e->seq == seq) {
		double left = deadline - ducky_now();
		struct timespec ts;
		if (left <= 0)
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		double s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + left;
		ts.tv_sec = (time_t)s;
		ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
		pthread_cond_timedwait(&done, &lock, &ts);
	}
	return 0;
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

/* Counts e's exchanges in the last hour (called locked). */
static size_t recent(entry *e, double now)
{
	size_t i = 0, j;
	while (i < e->nhist && e->hist[i] <= now - 3600)
		i++;
	for (j = 0; i < e->nhist; i++, j++)
		e->hist[j] = e->hist[i];
	return e->nhist = j;
}

static void remember_exchange(entry *e, double now)
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

static void forget(ducky_fresh *f)
{
	ducky_wipe_str(f->token);
	f->token = NULL;
}

/* A stored token fit to use: far enough from expiry. One inside its margin
 * but still valid stays in f (0); any other is forgotten. */
static int usable_stored(const ducky_token_conf *conf, ducky_fresh *f)
{
	double left = f->expires_at - ducky_wall();
	if (f->token && (f->lifetime <= 0 || f->lifetime > MAX_LIFETIME))
		f->lifetime = left < MAX_LIFETIME ? left : MAX_LIFETIME;
	if (f->token && left > margin_for(conf, f->lifetime))
		return 1;
	if (left <= 0)
		forget(f);
	return 0;
}

/* The leader's work, unlocked: the shared store first; then, holding the
 * store's lock so other processes wait, the store again and the token endpoint.
 * 0 with f filled (from *src); 1 when another process holds the lock and the
 * token in hand (have_valid: in memory; or f, from the store) is still valid;
 * -1 with err. *sent counts the exchange attempts that were made. */
static int fetch(const char *key, const ducky_token_conf *conf, const ducky_token_ops *ops,
                 int have_valid, ducky_fresh *f, ducky_source *src, int *sent, ducky_err *err)
{
	int locked = 0, rc;
	*src = DUCKY_SRC_STORE;
	if (ops->load) {
		if (ops->load(ops->ud, key, budget(conf, 0.25), f) && usable_stored(conf, f))
			return 0;
		have_valid |= f->token != NULL; /* valid, if inside the margin */
		/* with a valid token in hand, a held lock is not worth waiting for */
		locked = ops->lock &&
		         ops->lock(ops->ud, key, have_valid ? ducky_now() : budget(conf, 0.5));
		if (!locked && ops->lock && have_valid)
			return f->token ? 0 : 1;
		forget(f);
		if (ops->lock && ops->load(ops->ud, key, budget(conf, 0.25), f) &&
		    usable_stored(conf, f)) {
			if (locked)
				ops->unlock(ops->ud, key, budget(conf, 0.25));
			return 0;
		}
	}
	forget(f); /* a store's token inside its margin, not used */
	*src = DUCKY_SRC_EXCHANGE;
	rc = ops->exchange(ops->ud, f, sent, err);
	if (rc == 0 && ops->store)
		ops->store(ops->ud, key, f, budget(conf, 0.25));
	if (locked)
		ops->unlock(ops->ud, key, budget(conf, 0.25));
	return rc;
}

/* Hands e's token to the caller. Called locked. */
static int serve(entry *e, double now, ducky_source src, ducky_tokref *ref, ducky_token_info *info,
                 ducky_err *err)
{
	info->source = src;
	info->seconds_left = e->expires - now;
	return copy_out(e, ref, err);
}

/* Records what the leader's fetch gave: the new token, or the failure for
 * the waiters (and the backoff after a refused credential). Called locked. */
static void settle(entry *e, const ducky_token_conf *conf, int rc, ducky_fresh *f, double now,
                   const ducky_err *err)
{
	e->fetching = 0;
	e->seq++;
	ducky_err_clear(&e->last_err);
	pthread_cond_broadcast(&done);
	if (rc == 0) {
		publish(e, f, now);
		/* a store's token inside its margin: use it a while before trying again */
		e->next_try = e->expires - now > margin_for(conf, e->lifetime)
		                  ? 0
		                  : now + retry_interval(conf, e->lifetime);
	} else if (rc > 0) {
		e->next_try = now + retry_interval(conf, e->lifetime);
	} else {
		if (refused_credential(err)) {
			e->backoff_until = now + conf->auth_backoff;
			ducky_err_clear(&e->backoff_err);
			ducky_err_copy(&e->backoff_err, err);
		}
		ducky_err_copy(&e->last_err, err);
	}
}

/* Leads a fetch: unlocked while others wait (or, while the current token is
 * valid, use it), then publishes the outcome. Called locked; 0 with a token
 * served; -1 with err (info->stale set when the current token is still valid). */
static int lead(entry *e, const char *key, const ducky_token_conf *conf, const ducky_token_ops *ops,
                ducky_tokref *ref, ducky_token_info *info, ducky_err *err)
{
	ducky_fresh f = {NULL, 0, 0};
	ducky_source src;
	int sent = 0, have_valid = e->token && e->expires > ducky_now();
	e->fetching = 1;
	e->leader = pthread_self();
	pthread_mutex_unlock(&lock);
	int rc = fetch(key, conf, ops, have_valid, &f, &src, &sent, err);
	pthread_mutex_lock(&lock);
	double now = ducky_now();
	while (sent-- > 0) /* only exchanges that were sent count */
		remember_exchange(e, now);
	settle(e, conf, rc, &f, now, err);
	if (rc >= 0)
		return serve(e, now, rc == 0 ? src : DUCKY_SRC_MEMORY, ref, info, err);
	if (e->token && e->expires > now)
		info->stale = stale_reason(err);
	return -1;
}

/* The caller's way when no fresh token is in memory and nobody else fetches:
 * the backoff, the hourly cap, or leading a fetch. Called locked. */
static int refresh(entry *e, const char *key, const ducky_token_conf *conf,
                   const ducky_token_ops *ops, ducky_tokref *ref, ducky_token_info *info,
                   ducky_err *err)
{
	double now = ducky_now();
	int valid = e->token && e->expires > now;
	if (now < e->backoff_until) { /* a refused credential: no exchange for a while */
		ducky_err_copy(err, &e->backoff_err);
		if (valid)
			info->stale = stale_reason(&e->backoff_err);
	} else if (recent(e, now) >= (size_t)conf->max_per_hour) {
		ducky_fail(err, DUCKY_E_LIMIT,
		           "%d token exchanges in the last hour for this credential "
		           "(max_exchanges_per_hour); not making another",
		           conf->max_per_hour);
		if (valid)
			info->stale = "max_exchanges_per_hour";
	} else if (lead(e, key, conf, ops, ref, info, err) == 0) {
		return 0;
	}
	if (!info->stale)
		return -1;
	/* serve-stale: keep the still-valid token, try again a little later */
	ducky_err_clear(err);
	now = ducky_now();
	e->next_try = now + retry_interval(conf, e->lifetime);
	return serve(e, now, DUCKY_SRC_MEMORY, ref, info, err);
}

/* The rules, in order, for one caller. Called locked. */
static int get_locked(entry *e, const char *key, const ducky_token_conf *conf,
                      const ducky_token_ops *ops, ducky_tokref *ref, ducky_token_info *info,
                      ducky_err *err)
{
	for (int after_failure = 0;;) {
		double now = ducky_now();
		/* a valid token is served while it is outside the margin, between two
		 * tries inside it, and while another caller refreshes it */
		if (e->token && e->expires > now &&
		    (e->expires - now > margin_for(conf, e->lifetime) || now < e->next_try ||
		     e->fetching))
			return serve(e, now, DUCKY_SRC_MEMORY, ref, info, err);
		if (after_failure) { /* the fetch we waited for failed: share its error */
			ducky_err_copy(err, &e->last_err);
			return -1;
		}
		if (!e->fetching)
			return refresh(e, key, conf, ops, ref, info, err);
		if (pthread_equal(e->leader, pthread_self())) /* from a callback of that fetch */
			return ducky_fail(
			    err, DUCKY_E_CONFIG,
			    "a token exchange for these credentials is under way in this "
			    "thread: a log or token_cache callback cannot wait for it");
		unsigned long seq = e->seq;
		if (wait_for(seq, e, conf->deadline))
			return ducky_fail(err, DUCKY_E_TIMEOUT,
			                  "timed out waiting for another caller's token exchange");
		after_failure = e->seq != seq && e->last_err.kind != DUCKY_OK;
	}
}

int ducky_token_get(const char *key, const ducky_token_conf *conf, const ducky_token_ops *ops,
                    ducky_tokref *ref, ducky_token_info *info, ducky_err *err)
{
	entry *e;
	int rc;

	pthread_once(&done_once, init_cond);
	pthread_mutex_lock(&lock);
	info->stale = NULL;
	if (!(e = find(key, 1)))
		rc = ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
	else
		rc = get_locked(e, key, conf, ops, ref, info, err);
	pthread_mutex_unlock(&lock);
	return rc;
}

int ducky_token_invalidate(const char *key, const char *only_token, const ducky_token_ops *ops,
                           double deadline)
{
	int dropped = 0;
	double rejected_until = 0; /* wall clock: when the rejected token would have expired */
	pthread_mutex_lock(&lock);
	entry *e = find(key, 0);
	if (e && e->token && (!only_token || strcmp(e->token, only_token) == 0)) {
		rejected_until = ducky_wall() + (e->expires - ducky_now());
		ducky_wipe_free(e->token, e->len);
		e->token = NULL;
		e->len = 0;
		e->gen = ++generation;
		dropped = 1;
	}
	pthread_mutex_unlock(&lock);
	if (ops && ops->drop) { /* the shared store too: compare, then drop */
		ducky_fresh cur = {NULL, 0, 0};
		double now = ducky_now(), share = now + (deadline - now) / 4;
		/* that very token, or an older one (a revoked one another client left
		 * there): never a newer one, which another process just fetched */
		if (!only_token ||
		    (ops->load(ops->ud, key, share, &cur) && cur.token &&
		     (strcmp(cur.token, only_token) == 0 || cur.expires_at <= rejected_until + 1)))
			ops->drop(ops->ud, key, share);
		ducky_wipe_str(cur.token);
	}
	return dropped;
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
		                  "token answer's token_type is %s%.40s%s, not Bearer",
		                  type ? "\"" : "", type ? type : "missing", type ? "\"" : "");
	if (!(expires_in > 0) || !isfinite(expires_in))
		return ducky_fail(err, DUCKY_E_DECODE,
		                  "token answer's expires_in is not a positive number");
	return 0;
}

double ducky_token_lifetime(double expires_in)
{
	return expires_in < MAX_LIFETIME ? expires_in : MAX_LIFETIME;
}

void ducky_tokref_free(ducky_tokref *ref)
{
	ducky_wipe_free(ref->token, ref->cap);
	memset(ref, 0, sizeof *ref);
}
