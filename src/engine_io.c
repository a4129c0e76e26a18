/* The engine's descriptors (see engine.h): epoll holding libcurl's sockets,
 * the eventfd the token cache writes to and a timerfd armed for the next
 * step; poll() over the sockets and a pipe where there is no epoll (blocking
 * calls only). libcurl's socket and timer callbacks touch descriptors and a
 * time, nothing else. */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__linux__) && !defined(DUCKY_NO_EPOLL)
#define HAVE_EPOLL 1
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#endif

#define MAX_EVENTS 64

/* ---- descriptors ----------------------------------------------------------- */

#ifdef HAVE_EPOLL
/* Watches fd for events: added, or changed when `known` (registered by us
 * before), falling back to the other when that was wrong. */
static int watch(ducky_engine *e, int fd, unsigned events, int known)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	if (epoll_ctl(e->epfd, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0)
		return 0;
	if (errno != (known ? ENOENT : EEXIST))
		return -1;
	return epoll_ctl(e->epfd, known ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

static int open_fds(ducky_engine *e)
{
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	e->w.fd = e->wake_rd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (e->epfd < 0 || e->w.fd < 0 || e->tfd < 0 || watch(e, e->w.fd, EPOLLIN, 0) ||
	    watch(e, e->tfd, EPOLLIN, 0))
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

void io_close(ducky_engine *e)
{
	if (e->w.fd != e->wake_rd)
		close_fd(&e->w.fd);
	close_fd(&e->wake_rd);
	e->w.fd = -1;
	close_fd(&e->epfd);
	close_fd(&e->tfd);
}

void io_wake(ducky_engine *e)
{
	static const uint64_t one = 1;
	if (write(e->w.fd, &one, sizeof one) < 0) {
		/* full: readable already */
	}
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
	(void)easy;
#ifdef HAVE_EPOLL
	/* socketp: set (curl_multi_assign) once the socket is in the epoll set, so
	 * that a change is one epoll_ctl, not a MOD that fails and an ADD; libcurl
	 * forgets it with the socket (CURL_POLL_REMOVE) */
	if (what == CURL_POLL_REMOVE)
		epoll_ctl(e->epfd, EPOLL_CTL_DEL, s, NULL); /* may be closed already: fine */
	else if (watch(e, s,
	               (what & CURL_POLL_IN ? EPOLLIN : 0u) |
	                   (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
	               socketp != NULL) == 0 &&
	         !socketp)
		curl_multi_assign(e->multi, s, e);
#else
	(void)socketp;
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
	v[i].events =
	    (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
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

int io_open(ducky_engine *e)
{
	errno = 0;
	if (open_fds(e) || !(e->multi = curl_multi_init()))
		return -1;
	curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX); /* HTTP/2 */
	/* libcurl's default keeps 4 idle connections per easy handle in use, and
	 * shrinks as a batch ends: under load (ducky.ngx's pool) 11% of the calls
	 * reconnected. Idle ones still close after libcurl's max age. */
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, 256L);
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
	return 0;
}

/* ---- readiness ------------------------------------------------------------------ */

static void act(ducky_engine *e, int fd, int mask)
{
	int running;
	curl_multi_socket_action(e->multi, fd, mask, &running);
}

#ifdef HAVE_EPOLL
int io_poll(ducky_engine *e, int ms)
{
	int n = epoll_wait(e->epfd, e->ready, MAX_EVENTS, ms);
	e->nready = n > 0 ? n : 0;
	return n;
}

/* Hands what the descriptors say to libcurl (from the last wait, or now). */
void io_read_ready(ducky_engine *e)
{
	struct epoll_event *ev = e->ready;
	int n = e->polled ? e->nready : io_poll(e, 0);
	e->nready = 0;
	e->polled = 0;
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
void io_rearm(ducky_engine *e)
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
	eng_forked(e);
	if (!e->armed) {
		e->armed = 1;
		io_rearm(e);
	}
	return e->epfd;
}
#else
int io_poll(ducky_engine *e, int ms)
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

void io_read_ready(ducky_engine *e)
{
	struct pollfd *p;
	int polled = e->polled;
	e->polled = 0;
	if (!polled && io_poll(e, 0) <= 0)
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

void io_rearm(ducky_engine *e)
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
	if (!e->nready && t > 0) /* with nothing due, wait; else the step goes at once */
		io_poll(e, (int)ceil(t * 1000.0));
	/* the next step uses what this saw, or, due now, leaves the sockets to the next wait */
	e->polled = 1;
}
