/* The token fetch an operation leads (see engine_int.h): the shared store,
 * its lock (tried without blocking, again on the engine's timer), the store
 * again, then the exchange with the token endpoint, retried like any request;
 * its outcome goes to the process-wide cache, which wakes every waiter. */
#include "engine_int.h"

#include <string.h>

ducky_asker fetch_asker(ducky_engine *e, const void *who)
{
	return (ducky_asker){
	    .key = e->conf.creds->key, .conf = &e->conf.token, .w = &e->w, .who = who};
}

/* A deadline for a store call: a share of the time the fetch has left. */
static double budget(const fetch *f, double now, double share)
{
	double left = f->deadline - now;
	return now + (left > 0 ? left * share : 0);
}

void fetch_start(ducky_engine *e, const ducky_op *op)
{
	fetch *f = &e->f;
	ducky_creds *c = e->conf.creds;
	if (f->state != F_IDLE)
		return;
	f->lead_op = op->serial;
	/* the exchange serves every waiter: at least the client's timeout, even
	 * when the call that leads it has less (that call fails alone at its own).
	 * A call started a moment ago with the client's timeout keeps its own
	 * deadline: the exchange then ends with it, and the call gets the
	 * exchange's error, not a race of two timers a few microseconds apart. */
	double own = ducky_now() + e->conf.timeout;
	f->deadline = op->deadline > own - 0.05 ? op->deadline : own;
	f->locked = 0;
	f->tries = 0;
	f->lock_pause = 0.002;
	f->x = (xfer){.req = {.method = "POST",
	                      .url = c->token_url,
	                      .headers = c->headers,
	                      .idempotent = 1,
	                      .carries_secret = 1,
	                      .deadline = f->deadline,
	                      .connect_timeout = e->conf.connect_timeout,
	                      .retries = op->x.req.retries,
	                      .max_retry_after = e->conf.max_retry_after}};
	f->state = F_LOAD;
}

/* The outcome to the cache, which wakes the waiters; then, under the store's
 * lock, the back-off other processes share (kept after a failure, cleared by
 * a token), and the lock let go. */
static void settle(ducky_engine *e, ducky_fetch_result *res)
{
	fetch *f = &e->f;
	const ducky_host *h = &e->conf.host;
	const char *key = e->conf.creds->key;
	res->w = &e->w;
	if (!res->candidate.token) { /* the fetch's own candidate, if any */
		res->candidate = f->candidate;
		f->candidate.token = NULL;
	}
	ducky_token_settle(key, &e->conf.token, res);
	if (f->locked && h->backoff_set && res->kind == DUCKY_FETCH_FAILED && res->next_try > 0)
		h->backoff_set(h->ud, key, ducky_wall() + res->next_try, res->err->kind);
	else if (f->locked && h->backoff_set && res->kind == DUCKY_FETCH_TOKEN)
		h->backoff_set(h->ud, key, 0, DUCKY_OK);
	if (f->locked && h->unlock)
		h->unlock(h->ud, key, budget(f, ducky_now(), 0.25));
	f->locked = 0;
	f->from = res->src == DUCKY_SRC_EXCHANGE ? DUCKY_FROM_EXCHANGE : h->stored;
	f->gen = res->gen;
	f->stale = res->stale;
	ducky_fresh_forget(&f->candidate);
	f->state = F_IDLE;
	f->x.h = NULL;
	f->x.attempts = 0;
}

static void settle_token(ducky_engine *e, ducky_fresh *tok, ducky_source src)
{
	ducky_fetch_result res = {.kind = DUCKY_FETCH_TOKEN, .src = src, .fresh = *tok};
	tok->token = NULL;
	settle(e, &res);
}

static void settle_failed(ducky_engine *e, ducky_err *err)
{
	err->attempts = e->f.x.attempts; /* the exchange's, for everyone told of it */
	ducky_fetch_result res = {
	    .kind = DUCKY_FETCH_FAILED, .err = err, .retry_after = err->retry_after};
	settle(e, &res);
}

static void settle_timeout(ducky_engine *e)
{
	ducky_err err;
	ducky_err_init(&err);
	ducky_fail(&err, DUCKY_E_TIMEOUT, "token exchange: timed out waiting for the token store");
	settle_failed(e, &err);
	ducky_err_clear(&err);
}

/* Reads the store: 1 when it had a token to use (settled), else 0 (a token
 * inside its margin becomes the candidate). */
static int from_store(ducky_engine *e, double now)
{
	const ducky_host *h = &e->conf.host;
	ducky_fresh got = {NULL, 0, 0};
	if (!h->load(h->ud, e->conf.creds->key, budget(&e->f, now, 0.25), &got))
		return 0;
	int use = ducky_token_stored_use(&e->conf.token, &got);
	if (use > 0) {
		settle_token(e, &got, DUCKY_SRC_STORE);
		return 1;
	}
	if (use == 0) { /* valid, inside its margin */
		ducky_fresh_forget(&e->f.candidate);
		e->f.candidate = got;
	}
	return 0;
}

/* Whether a valid token is in hand: the cache's, or the store's candidate. */
static int have_valid(const ducky_engine *e)
{
	return ducky_token_left(e->conf.creds->key) > 0 || e->f.candidate.token;
}

/* The store's lock: taken, then the store read again (another process may
 * have just stored a token); held elsewhere, tried again on the timer until
 * half the time is gone, then the exchange goes ahead unlocked (at once when
 * the lock cannot be taken: a store that is down, a lock file unusable). With a valid
 * token in hand a held lock is not worth waiting for: it is served meanwhile. */
static int lock_step(ducky_engine *e, double now)
{
	fetch *f = &e->f;
	const ducky_host *h = &e->conf.host;
	if (f->tries++ && from_store(e, now))
		return 1;
	int rc = h->lock(h->ud, e->conf.creds->key, now);
	if (rc > 0) {
		f->locked = 1;
		if (!from_store(e, now))
			f->state = F_READY;
		return 1;
	}
	if (rc < 0) { /* a lock that cannot be taken is not waited for */
		f->state = F_READY;
	} else if (have_valid(e)) {
		settle(e, &(ducky_fetch_result){.kind = DUCKY_FETCH_KEEP});
	} else if (now >= f->lock_until) {
		f->state = F_READY;
	} else {
		f->x.not_before = now + f->lock_pause;
		if (f->lock_pause < 0.05)
			f->lock_pause *= 2;
		return 0;
	}
	return 1;
}

/* Another process's exchange failed a moment ago: this one waits out the
 * same back-off (serving a valid stored token meanwhile). 1 if so (settled). */
static int shared_backoff(ducky_engine *e)
{
	const ducky_host *h = &e->conf.host;
	ducky_kind kind = DUCKY_E_HTTP;
	double left =
	    h->backoff_get ? h->backoff_get(h->ud, e->conf.creds->key, &kind) - ducky_wall() : 0;
	/* no process writes more than a step ahead: a later time is the wall
	 * clock stepped back since, or garbage, and would hold every process */
	if (!(left > 0) || left > DUCKY_BACKOFF_CAP + 1)
		return 0;
	ducky_err err;
	ducky_err_init(&err);
	ducky_fail(&err, kind,
	           "token endpoint: the exchange failed in another process; the next try is in "
	           "%.1f s (the back-off processes share)",
	           left);
	err.retry_after = left;
	err.retryable = 1;
	settle_failed(e, &err);
	ducky_err_clear(&err);
	return 1;
}

static int load_step(ducky_engine *e, double now)
{
	fetch *f = &e->f;
	const ducky_host *h = &e->conf.host;
	if (!h->load) {
		f->state = F_READY;
		return 1;
	}
	if (from_store(e, now) || shared_backoff(e))
		return 1;
	f->lock_until = budget(f, now, 0.5);
	f->state = h->lock ? F_LOCK : F_READY;
	return 1;
}

static int exchange_step(ducky_engine *e)
{
	fetch *f = &e->f;
	ducky_creds *c = e->conf.creds;
	ducky_err err;
	ducky_err_init(&err);
	if (ducky_creds_next(c, &err) == 0) { /* a fresh client assertion for each attempt */
		f->x.req.body = c->body.data;
		f->x.req.body_len = c->body.len;
		if (f->x.attempts == 0)
			e->conf.st->token_fetches++;
		if (eng_send(e, &f->x, f, &err) == 0) {
			f->state = F_SENDING;
			return 1;
		}
	}
	settle_failed(e, &err);
	ducky_err_clear(&err);
	return 1;
}

int fetch_advance(ducky_engine *e, double now)
{
	fetch *f = &e->f;
	if (f->state == F_IDLE || f->state == F_SENDING || now < f->x.not_before)
		return 0;
	if (now >= f->deadline && f->state != F_READY) {
		settle_timeout(e);
		return 1;
	}
	switch (f->state) {
	case F_LOAD:
		return load_step(e, now);
	case F_LOCK:
		return lock_step(e, now);
	case F_READY:
		return exchange_step(e);
	default:
		return 0;
	}
}

/* The answer: the token (stored, then published), or why not. */
static void answered(ducky_engine *e, ducky_http *h)
{
	const ducky_host *host = &e->conf.host;
	ducky_fresh got = {NULL, 0, 0};
	ducky_err err;
	ducky_err_init(&err);
	int rc = host->read_token(host->ud, &h->ans, &got, &err);
	ducky_answer_free(&h->ans); /* it held the token: wiped */
	eng_unsend(e, &e->f.x);
	if (rc == 0) {
		if (host->store)
			host->store(host->ud, e->conf.creds->key, &got,
			            budget(&e->f, ducky_now(), 0.25));
		settle_token(e, &got, DUCKY_SRC_EXCHANGE);
	} else {
		settle_failed(e, &err);
	}
	ducky_fresh_forget(&got);
	ducky_err_clear(&err);
}

void fetch_ended(ducky_engine *e)
{
	fetch *f = &e->f;
	ducky_retry_event ev;
	ducky_err err;
	ducky_err_init(&err);
	int r = ducky_http_outcome(f->x.h, &f->x.req, f->x.rc, f->x.attempts, &ev, &err);
	if (r == 1) {
		ducky_answer_free(&f->x.h->ans);
		eng_unsend(e, &f->x);
		eng_retry_event(e, &ev);
		f->x.not_before = ducky_now() + ev.wait;
		f->state = F_READY;
	} else if (r == 0) {
		answered(e, f->x.h);
	} else {
		eng_unsend(e, &f->x);
		settle_failed(e, &err);
	}
	ducky_err_clear(&err);
}

double fetch_due(const ducky_engine *e)
{
	switch (e->f.state) {
	case F_LOAD:
		return 0;
	case F_LOCK:
	case F_READY:
		return e->f.x.not_before;
	default:
		return -1;
	}
}

void fetch_abandon(ducky_engine *e)
{
	fetch *f = &e->f;
	if (f->state == F_IDLE)
		return;
	if (f->x.h)
		ducky_answer_free(&f->x.h->ans);
	eng_unsend(e, &f->x);
	settle(e, &(ducky_fetch_result){.kind = DUCKY_FETCH_ABANDONED});
}

/* An exchange past its deadline whose leading call has ended (a call with a
 * shorter timeout: the exchange had the client's), which nobody stepped since:
 * let go, not failed, so that the next caller leads a fresh one rather than
 * get its timeout, and a back-off, from an answer that sat unread. */
void fetch_drop_stale(ducky_engine *e, double now)
{
	fetch *f = &e->f;
	if (f->state == F_IDLE || now < f->deadline)
		return;
	for (const ducky_op *op = e->ops; op; op = op->next)
		if (op->serial == f->lead_op && op->state != OP_DONE)
			return;
	fetch_abandon(e);
}

void fetch_forget(ducky_engine *e)
{
	fetch *f = &e->f;
	f->state = F_IDLE;
	f->x.h = NULL;
	f->locked = 0; /* the parent's lock too: never unlocked from here */
	ducky_fresh_forget(&f->candidate);
}
