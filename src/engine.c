/* The engine's driver (see engine.h): its life, the handle pool, step and
 * timeout (the descriptors and libcurl's socket callbacks are engine_io.c). */
#include "engine_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define MAX_IDLE 64 /* handles kept for reuse; more are closed */

const char *const ducky_from_names[DUCKY_FROM_COUNT] = {"memory", "exchange", "file", "store"};

/* ---- fork: a child starts over, never touching what it shares ------------ */

static unsigned fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
	fork_gen++;
}

static void install_atfork(void)
{
	pthread_atfork(NULL, NULL, on_fork_child);
}

/* ---- the engine ------------------------------------------------------------- */

ducky_engine *ducky_engine_new(const ducky_engine_conf *conf, ducky_err *err)
{
	ducky_engine *e = calloc(1, sizeof *e);
	pthread_once(&atfork_once, install_atfork);
	if (!e) {
		ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
		return NULL;
	}
	e->conf = *conf;
	e->epfd = e->tfd = e->wake_rd = e->w.fd = -1;
	e->curl_due = -1;
	e->fork_gen = fork_gen;
	e->w.last_step_ms = (long long)(ducky_now() * 1000.0);
	if (io_open(e)) {
		ducky_fail(err, DUCKY_E_LIMIT, "cannot make the engine: %s",
		           errno ? strerror(errno) : "curl_multi_init failed");
		ducky_engine_free(e);
		return NULL;
	}
	return e;
}

/* Closes a handle, wiping what it held (a connection may carry a token). */
static void close_handle(ducky_engine *e, ducky_http *h)
{
	if (h) {
		ducky_http_close(h);
		free(h);
		e->nhandles--;
	}
}

/* Everything the engine holds, let go without touching the multi (the forked
 * child's way: the parent still uses those connections) or with it. */
static void drop_all(ducky_engine *e, int touch_multi)
{
	ducky_op *op, *next;
	for (op = e->ops; op; op = next) {
		next = op->next;
		if (op->state == OP_SENDING && touch_multi)
			eng_unsend(e, &op->x);
		op->x.h = NULL;
		ducky_err err;
		ducky_err_init(&err);
		ducky_fail(&err, DUCKY_E_CANCELLED, "%s %.300s: cancelled: the client was closed",
		           op->method, op->url ? op->url : "");
		op_finish(op, &err);
		ducky_err_clear(&err);
		op->e = NULL;
		op->next = op->prev = NULL;
		if (!op->held)
			op_free(op);
	}
	e->ops = NULL;
	e->nops = 0;
	if (touch_multi)
		fetch_abandon(e);
	ducky_token_forget(&e->w);
}

void ducky_engine_free(ducky_engine *e)
{
	if (!e)
		return;
	int was = ducky_wipe_all(1); /* buffers and connections */
	drop_all(e, e->fork_gen == fork_gen);
	for (size_t i = 0; i < e->nidle; i++)
		close_handle(e, e->idle[i]);
	if (e->multi && e->fork_gen == fork_gen)
		curl_multi_cleanup(e->multi);
	if (e->spare)
		op_free(e->spare);
	op_bearer_gone(e);
	ducky_wipe_all(was);
	io_close(e);
	free(e->idle);
	free(e->ready);
	free(e->socks);
	free(e);
}

/* In a child after fork: the parent's multi, connections, epoll set and
 * eventfd are shared with it, so they are left alone (and leaked), and the
 * engine starts over with its own. Calls under way end as cancelled. */
static int after_fork(ducky_engine *e)
{
	drop_all(e, 0);
	fetch_forget(e); /* no unlock: the store's lock is the parent's too */
	for (size_t i = 0; i < e->nidle; i++) {
		e->idle[i]->easy = NULL; /* the parent's: never cleaned up here */
		close_handle(e, e->idle[i]);
	}
	e->nidle = 0;
	e->nhandles = 0;
	io_close(e); /* our copies only: the parent's stay open */
	e->multi = NULL;
	e->fork_gen = fork_gen;
	e->curl_due = -1;
	e->nready = 0;
	e->armed = 0;
	return io_open(e);
}

int eng_forked(ducky_engine *e)
{
	if (e->fork_gen == fork_gen)
		return 0;
	after_fork(e);
	return 1;
}

/* ---- handles ----------------------------------------------------------------- */

ducky_http *eng_handle(ducky_engine *e, ducky_err *err)
{
	if (e->nidle)
		return e->idle[--e->nidle];
	ducky_http *h = calloc(1, sizeof *h);
	if (!h) {
		ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
		return NULL;
	}
	if (ducky_http_open(h, e->conf.http, err)) {
		ducky_http_close(h);
		free(h);
		return NULL;
	}
	e->nhandles++;
	return h;
}

void eng_put_handle(ducky_engine *e, ducky_http *h)
{
	h->owner = NULL;
	if (e->nidle == e->capidle && e->nidle < MAX_IDLE) {
		size_t cap = e->capidle ? e->capidle * 2 : 4;
		ducky_http **p = realloc(e->idle, cap * sizeof *p);
		if (p) {
			e->idle = p;
			e->capidle = cap;
		}
	}
	if (e->nidle < e->capidle)
		e->idle[e->nidle++] = h;
	else
		close_handle(e, h);
}

int eng_send(ducky_engine *e, xfer *x, void *owner, ducky_err *err)
{
	double remaining;
	if (ducky_time_left(&x->req, x->attempts + 1, &remaining, err))
		return -1;
	if (!x->h && !(x->h = eng_handle(e, err)))
		return -1;
	x->h->owner = owner;
	x->ended = 0;
	ducky_http_setup(x->h, &x->req, remaining);
	if (curl_multi_add_handle(e->multi, x->h->easy) != CURLM_OK) {
		eng_put_handle(e, x->h);
		x->h = NULL;
		return ducky_fail(err, DUCKY_E_LIMIT, "curl_multi_add_handle failed");
	}
	x->attempts++;
	return 0;
}

void eng_unsend(ducky_engine *e, xfer *x)
{
	if (x->h) {
		if (!x->ended)
			curl_multi_remove_handle(e->multi, x->h->easy);
		eng_put_handle(e, x->h);
		x->h = NULL;
	}
}

/* ---- events --------------------------------------------------------------------- */

void eng_emit(ducky_engine *e, const ducky_event *ev)
{
	if (e->conf.host.event)
		e->conf.host.event(e->conf.host.ud, ev);
}

void eng_retry_event(ducky_engine *e, const ducky_retry_event *ev)
{
	e->conf.st->retries++;
	eng_emit(e, &(ducky_event){.event = "retry",
	                           .reason = ev->reason,
	                           .attempt = ev->attempt,
	                           .wait = &ev->wait});
}

const char *eng_fingerprint(ducky_engine *e)
{
	const ducky_tokref *t = e->conf.tok;
	if (e->fp_gen != t->gen) { /* events never show a token, only this */
		ducky_fingerprint(t->token, t->len, e->fp);
		e->fp_gen = t->gen;
	}
	return e->fp;
}

/* ---- step ----------------------------------------------------------------------- */

/* The transfers that ended go to their owners: an operation or the fetch. */
static void collect(ducky_engine *e)
{
	CURLMsg *m;
	int queued;
	while ((m = curl_multi_info_read(e->multi, &queued)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		ducky_http *h = NULL;
		CURL *easy = m->easy_handle;
		CURLcode rc = m->data.result;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&h);
		curl_multi_remove_handle(e->multi, easy);
		xfer *x = h->owner == (void *)&e->f ? &e->f.x : &((ducky_op *)h->owner)->x;
		x->rc = rc;
		x->ended = 1;
		if (x == &e->f.x)
			fetch_ended(e);
		else
			op_ended(h->owner);
	}
}

/* Cancels op unless done, takes it off the list and frees it. */
static void discard(ducky_engine *e, ducky_op *op)
{
	if (op->state != OP_DONE)
		ducky_op_cancel(op);
	if (op->prev)
		op->prev->next = op->next;
	else
		e->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	e->nops--;
	op->e = NULL;
	op_recycle(e, op);
}

/* Operations the host let go of (a finalizer inside a step marks them). */
static void sweep(ducky_engine *e)
{
	ducky_op *op, *next;
	for (op = e->ops; op; op = next) {
		next = op->next;
		if (!op->held)
			discard(e, op);
	}
}

static int advance_all(ducky_engine *e, double now)
{
	int moved = fetch_advance(e, now);
	for (ducky_op *op = e->ops; op; op = op->next)
		moved |= op_advance(op, now);
	return moved;
}

static int curl_due_now(ducky_engine *e, double now)
{
	if (e->curl_due < 0 || e->curl_due > now)
		return 0;
	e->curl_due = -1;
	int running;
	curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	return 1;
}

int ducky_engine_step(ducky_engine *e)
{
	if (e->fork_gen != fork_gen && after_fork(e))
		return 0;
	double now = ducky_now();
	int was = ducky_wipe_all(0);
	ducky_wipe_all(was || e->f.state != F_IDLE); /* what the exchange leaves is wiped */
	e->w.last_step_ms = (long long)(now * 1000.0);
	e->in_step++;
	e->finished = 0;
	ducky_token_stepping(&e->w);
	sweep(e);
	fetch_drop_stale(e, now);
	io_read_ready(e);
	for (int round = 0; round < 8; round++) {
		int moved = curl_due_now(e, now);
		collect(e);
		moved |= advance_all(e, now);
		now = ducky_now();
		if (!moved && !(e->curl_due >= 0 && e->curl_due <= now))
			break;
	}
	ducky_token_stepping(NULL);
	ducky_wipe_all(was);
	e->in_step--;
	sweep(e);
	io_rearm(e);
	return e->finished;
}

double ducky_engine_timeout(ducky_engine *e)
{
	double now = ducky_now(), due = e->curl_due, d;
	int waiting = 0;
#define CONSIDER(t) ((d = (t)) >= 0 && (due < 0 || d < due) ? (void)(due = d) : (void)0)
	CONSIDER(fetch_due(e));
	if (e->f.state != F_IDLE)
		CONSIDER(now + DUCKY_HEARTBEAT);
	for (ducky_op *op = e->ops; op; op = op->next) {
		if (!op->held && op->state != OP_DONE)
			return 0; /* to cancel */
		CONSIDER(op_due(op));
		waiting |= op->state == OP_WAIT_TOKEN;
	}
	if (waiting) /* ask again now and then: a leader nobody moves is taken over */
		CONSIDER(now + DUCKY_HEARTBEAT);
#undef CONSIDER
	if (due < 0)
		return -1;
	return due > now ? due - now : 0;
}

int ducky_engine_busy(const ducky_engine *e)
{
	for (const ducky_op *op = e->ops; op; op = op->next)
		if (op->state != OP_DONE)
			return 1;
	return e->f.state != F_IDLE;
}

/* ---- operations: the list --------------------------------------------------------- */

void eng_add_op(ducky_engine *e, ducky_op *op)
{
	op->e = e;
	op->prev = NULL;
	op->next = e->ops;
	if (e->ops)
		e->ops->prev = op;
	e->ops = op;
	e->nops++;
}

void eng_after_call(ducky_engine *e)
{
	io_rearm(e);
}

void ducky_op_release(ducky_op *op)
{
	ducky_engine *e = op->e;
	op->held = 0;
	if (!e) {
		op_free(op); /* detached: nobody else holds it */
	} else if (!e->in_step) {
		discard(e, op);
		io_rearm(e);
	}
	/* else a finalizer inside the engine's work: the next sweep frees it */
}

/* ---- invalidate ---------------------------------------------------------------------- */

int ducky_engine_drop_token(ducky_engine *e, const char *only_token, double deadline)
{
	const char *key = e->conf.creds->key;
	const ducky_host *h = &e->conf.host;
	double rejected_until;
	int rc = ducky_token_invalidate(key, only_token, &rejected_until);
	if (rc < 0 || !h->drop)
		return rc;
	ducky_fresh cur = {NULL, 0, 0};
	double now = ducky_now(), share = now + (deadline - now) / 4;
	e->in_step++; /* finalizers run by the store's Lua mark, never free */
	/* that very token, or an older one (a revoked one another client left
	 * there): never a newer one, which another process just fetched */
	if (!only_token ||
	    (h->load(h->ud, key, share, &cur) && cur.token &&
	     (strcmp(cur.token, only_token) == 0 || cur.expires_at <= rejected_until + 1)))
		h->drop(h->ud, key, share);
	e->in_step--;
	ducky_fresh_forget(&cur);
	return rc;
}
