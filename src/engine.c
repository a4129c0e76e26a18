/* The engine's driver (see engine.h): descriptors, libcurl's multi_socket
 * callbacks, the handle pool, step, wait and timeout. */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

#if defined(__linux__) && !defined(DUCKY_NO_EPOLL)
#define HAVE_EPOLL 1
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#endif

#define MAX_EVENTS 64
#define MAX_IDLE   64 /* handles kept for reuse; more are closed */

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

/* ---- descriptors ----------------------------------------------------------- */

#ifdef HAVE_EPOLL
static int watch(ducky_engine *e, int fd, unsigned events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
		return 0;
	return errno == ENOENT ? epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) : -1;
}

static int open_fds(ducky_engine *e)
{
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	e->w.fd = e->wake_rd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (e->epfd < 0 || e->w.fd < 0 || e->tfd < 0 || watch(e, e->w.fd, EPOLLIN) ||
	    watch(e, e->tfd, EPOLLIN))
		return -1;
	return (e->ready = malloc(MAX_EVENTS * sizeof(struct epoll_event))) ? 0 : -1;
}
#else
typedef struct sock {
	int fd;
	short events;
} sock;

static int open_fds(ducky_engine *e)
{
	int p[2];
	e->epfd = e->tfd = -1;
	if (pipe(p) != 0)
		return -1;
	e->wake_rd = p[0];
	e->w.fd = p[1];
	for (int i = 0; i < 2; i++) {
		fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
		fcntl(p[i], F_SETFD, FD_CLOEXEC);
	}
	return 0;
}
#endif

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void close_fds(ducky_engine *e)
{
	if (e->w.fd != e->wake_rd)
		close_fd(&e->w.fd);
	close_fd(&e->wake_rd);
	e->w.fd = -1;
	close_fd(&e->epfd);
	close_fd(&e->tfd);
}

static void drain(int fd)
{
	char buf[64];
	while (fd >= 0 && read(fd, buf, sizeof buf) > 0)
		;
}

/* ---- libcurl's callbacks: descriptors and a time, nothing else ------------- */

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	ducky_engine *e = userp;
	(void)easy, (void)socketp;
#ifdef HAVE_EPOLL
	if (what == CURL_POLL_REMOVE)
		epoll_ctl(e->epfd, EPOLL_CTL_DEL, s, NULL); /* may be closed already: fine */
	else
		watch(e, s, (what & CURL_POLL_IN ? EPOLLIN : 0u) |
		                (what & CURL_POLL_OUT ? EPOLLOUT : 0u));
#else
	sock *v = e->socks;
	size_t i = 0;
	while (i < e->nsocks && v[i].fd != s)
		i++;
	if (what == CURL_POLL_REMOVE) {
		if (i < e->nsocks)
			v[i] = v[--e->nsocks];
		return 0;
	}
	if (i == e->nsocks) {
		if (e->nsocks == e->capsocks) {
			size_t cap = e->capsocks ? e->capsocks * 2 : 8;
			if (!(v = realloc(e->socks, cap * sizeof *v)))
				return -1;
			e->socks = v;
			e->capsocks = cap;
		}
		v[e->nsocks++].fd = s;
	}
	v[i].events = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
#endif
	return 0;
}

static int on_timer(CURLM *multi, long ms, void *userp)
{
	ducky_engine *e = userp;
	(void)multi;
	e->curl_due = ms < 0 ? -1 : ducky_now() + (double)ms / 1000.0;
	return 0;
}

/* ---- the engine ------------------------------------------------------------- */

static int open_multi(ducky_engine *e)
{
	errno = 0;
	if (open_fds(e) || !(e->multi = curl_multi_init()))
		return -1;
	/* HTTP/2 streams share a connection; an HTTP/1.1 client never waits for one
	 * (with multiplexing on, libcurl queues transfers behind a busy HTTP/1.1
	 * connection instead of opening another) */
	curl_multi_setopt(e->multi, CURLMOPT_PIPELINING,
	                  e->conf.http->http_version == CURL_HTTP_VERSION_1_1
	                      ? (long)CURLPIPE_NOTHING
	                      : (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
	return 0;
}

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
	if (open_multi(e)) {
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
	op_bearer_gone(e);
	ducky_wipe_all(was);
	close_fds(e);
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
	close_fds(e); /* our copies only: the parent's stay open */
	e->multi = NULL;
	e->fork_gen = fork_gen;
	e->curl_due = -1;
	e->nready = 0;
	e->armed = 0;
	return open_multi(e);
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

/* ---- readiness ------------------------------------------------------------------ */

static void act(ducky_engine *e, int fd, int mask)
{
	int running;
	curl_multi_socket_action(e->multi, fd, mask, &running);
}

#ifdef HAVE_EPOLL
static int poll_for(ducky_engine *e, int ms)
{
	int n = epoll_wait(e->epfd, e->ready, MAX_EVENTS, ms);
	e->nready = n > 0 ? n : 0;
	return n;
}

/* Hands what the descriptors say to libcurl (from the last wait, or now). */
static void read_ready(ducky_engine *e)
{
	struct epoll_event *ev = e->ready;
	int n = e->nready ? e->nready : poll_for(e, 0);
	e->nready = 0;
	for (int i = 0; i < n; i++) {
		int fd = ev[i].data.fd;
		unsigned r = ev[i].events;
		if (fd == e->wake_rd || fd == e->tfd) {
			drain(fd);
			continue;
		}
		act(e, fd,
		    (r & EPOLLIN ? CURL_CSELECT_IN : 0) | (r & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
		        (r & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0));
	}
}

/* The timerfd, when a host polls the descriptor: readable once step is due. */
static void rearm(ducky_engine *e)
{
	if (!e->armed)
		return;
	double t = ducky_engine_timeout(e);
	struct itimerspec its = {{0, 0}, {0, 0}};
	if (t >= 0) {
		its.it_value.tv_sec = (time_t)t;
		its.it_value.tv_nsec = (long)((t - (double)its.it_value.tv_sec) * 1e9);
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1; /* 0 would disarm it */
	}
	timerfd_settime(e->tfd, 0, &its, NULL);
}

int ducky_engine_fd(ducky_engine *e)
{
	if (e->fork_gen != fork_gen && after_fork(e))
		return -1;
	if (!e->armed) {
		e->armed = 1;
		rearm(e);
	}
	return e->epfd;
}
#else
static int poll_for(ducky_engine *e, int ms)
{
	size_t n = e->nsocks + 1;
	struct pollfd *p = realloc(e->ready, n * sizeof *p);
	const sock *v = e->socks;
	if (!p)
		return -1;
	e->ready = p;
	p[0] = (struct pollfd){.fd = e->wake_rd, .events = POLLIN};
	for (size_t i = 1; i < n; i++)
		p[i] = (struct pollfd){.fd = v[i - 1].fd, .events = v[i - 1].events};
	int r = poll(p, (nfds_t)n, ms);
	e->nready = r > 0 ? (int)n : 0;
	return r;
}

static void read_ready(ducky_engine *e)
{
	struct pollfd *p;
	if (!e->nready && poll_for(e, 0) <= 0)
		return;
	p = e->ready;
	for (int i = 0; i < e->nready; i++) {
		short r = p[i].revents;
		if (!r)
			continue;
		if (p[i].fd == e->wake_rd) {
			drain(e->wake_rd);
			continue;
		}
		act(e, p[i].fd,
		    (r & POLLIN ? CURL_CSELECT_IN : 0) | (r & POLLOUT ? CURL_CSELECT_OUT : 0) |
		        (r & (POLLERR | POLLHUP) ? CURL_CSELECT_ERR : 0));
	}
	e->nready = 0;
}

static void rearm(ducky_engine *e)
{
	(void)e;
}

int ducky_engine_fd(ducky_engine *e)
{
	(void)e;
	return -1; /* no epoll: blocking calls only (README "Event loops") */
}
#endif

void ducky_engine_wait(ducky_engine *e, double max)
{
	double t = ducky_engine_timeout(e);
	if (t < 0 || t > max)
		t = max;
	if (e->nready)
		return; /* something seen already */
	poll_for(e, (int)ceil(t * 1000.0));
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
	op_free(op);
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
	act(e, CURL_SOCKET_TIMEOUT, 0);
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
	read_ready(e);
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
	rearm(e);
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
	rearm(e);
}

void ducky_op_release(ducky_op *op)
{
	ducky_engine *e = op->e;
	op->held = 0;
	if (!e) {
		op_free(op); /* detached: nobody else holds it */
	} else if (!e->in_step) {
		discard(e, op);
		rearm(e);
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
