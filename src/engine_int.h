/* The engine's insides, shared by engine.c (the driver), op.c (operations)
 * and fetch.c (the token fetch). Nothing outside those three includes it. */
#ifndef DUCKY_ENGINE_INT_H
#define DUCKY_ENGINE_INT_H

#include "engine.h"

/* A transfer: one request on one handle at a time, with its attempts. The
 * engine finds it from the handle (h->owner) when libcurl says it ended. */
typedef struct xfer {
	ducky_req req;
	ducky_http *h; /* while on the multi */
	int attempts;
	double not_before; /* a retry waits until then */
	CURLcode rc;       /* how the last attempt ended */
	int ended;         /* the last attempt ended; rc and h->ans tell how */
} xfer;

/* The bearer header list of one token generation: the Authorization line and
 * the client's API headers. Shared by the operations that send it, freed when
 * the last lets go once a newer generation replaced it. */
typedef struct bearer {
	struct curl_slist *list;
	const char *token; /* inside the first line */
	unsigned long gen;
	int refs;
} bearer;

typedef enum {
	OP_TOKEN,      /* needs the token (or has no use for one) */
	OP_WAIT_TOKEN, /* waits for a fetch, its own engine's or another's */
	OP_READY,      /* may send once not_before has passed */
	OP_SENDING,    /* on the multi */
	OP_DONE
} op_state;

struct ducky_op {
	ducky_op *next, *prev; /* in the engine's list while not detached */
	ducky_engine *e;       /* NULL once detached (the engine is gone) */
	int held;              /* the host holds it */
	op_state state;
	int auth, token_only, retries;
	char method[32];
	unsigned long serial;       /* unique in the process: who it is to the token cache */
	ducky_buf urlb;             /* owned copy of the URL (kept when recycled) */
	char *url, *body;           /* url: urlb's; body: an owned copy */
	struct curl_slist *extra;   /* owned copy of the call's own headers */
	struct curl_slist *headers; /* the current attempt's merged list (owned), or NULL */
	bearer *bearer;             /* the token the current attempt sends (a reference) */
	double deadline;            /* ducky_now() seconds */
	ducky_asker ask;            /* the token cache's view of this operation */
	xfer x;
	ducky_result res;
};

typedef enum { F_IDLE, F_LOAD, F_LOCK, F_READY, F_SENDING } fetch_state;

/* The token fetch an operation of this engine leads (one at a time: a client
 * has one key). It belongs to the engine: cancelling the operation that began
 * it does not end it, others wait for it. */
typedef struct fetch {
	fetch_state state;
	unsigned long lead_op; /* the serial of the operation that began it, told where
	                          its token came from */
	ducky_from from;       /* where the last settled fetch's token came from */
	unsigned long gen;     /* the generation it published, 0: none */
	double deadline;       /* the leader's */
	double lock_until;     /* lock tries give up then and exchange unlocked */
	double lock_pause;     /* between lock tries */
	int tries;             /* lock tries made */
	const char *stale;     /* why the last settle left the token in hand stale, or NULL */
	int locked;            /* the store's lock is ours */
	ducky_fresh candidate; /* a valid stored token inside its margin */
	xfer x;
} fetch;

struct ducky_engine {
	ducky_engine_conf conf;
	CURLM *multi;
	ducky_waker w; /* w.fd: the eventfd (or pipe) the token cache writes to */
	int wake_rd;   /* its read end (the same eventfd on Linux) */
	int epfd, tfd; /* epoll and timerfd; -1 where there are none */
	int armed;     /* the timerfd is armed: the host polls the descriptor */
	unsigned fork_gen;
	double curl_due; /* when libcurl's timer expires, < 0: none */
	int in_step;
	ducky_op *ops; /* under way or not yet released */
	int nops;
	int finished; /* operations that ended during this step */
	fetch f;
	ducky_http **idle; /* handles not in use */
	size_t nidle, capidle;
	size_t nhandles; /* in use or idle */
	void *ready;     /* events a wait saw, for the next step */
	int polled;      /* a wait just looked (ready holds what it saw): the step need not */
	int nready;
	/* poll() where there is no epoll: libcurl's sockets and what they want */
	void *socks;
	size_t nsocks, capsocks;
	char fp[13]; /* the fingerprint of tok's generation fp_gen */
	unsigned long fp_gen;
	bearer *bearer;  /* the current generation's list, or NULL */
	ducky_op *spare; /* one finished operation kept for the next start (its buffers too) */
};

/* ---- engine_io.c ---- */
int io_open(ducky_engine *e);         /* descriptors and the multi: 0, or -1 (errno) */
void io_close(ducky_engine *e);       /* the descriptors */
int io_poll(ducky_engine *e, int ms); /* waits up to ms for readiness, kept for the step */
void io_read_ready(ducky_engine *e);  /* what is ready, to libcurl */
void io_rearm(ducky_engine *e);
void io_wake(ducky_engine *e);
/* makes the descriptor readable (the wake-up) */ /* the timerfd, when a host polls the
                                                     descriptor */

/* ---- engine.c ---- */
void eng_add_op(ducky_engine *e, ducky_op *op);
void eng_after_call(ducky_engine *e); /* after start or cancel: the timer again */
int eng_forked(ducky_engine *e);      /* 1 if it had to start over after a fork */
ducky_http *eng_handle(ducky_engine *e, ducky_err *err);
void eng_put_handle(ducky_engine *e, ducky_http *h);
/* Puts x's next attempt on the multi: 0, or -1 with err. */
int eng_send(ducky_engine *e, xfer *x, void *owner, ducky_err *err);
/* Takes x off the multi (a cancel) and gives its handle back. */
void eng_unsend(ducky_engine *e, xfer *x);
void eng_emit(ducky_engine *e, const ducky_event *ev);
const char *eng_fingerprint(ducky_engine *e);
void eng_retry_event(ducky_engine *e, const ducky_retry_event *ev);

/* ---- op.c ---- */
int op_advance(ducky_op *op, double now); /* 1 if it moved */
void op_ended(ducky_op *op);              /* its transfer ended */
void op_finish(ducky_op *op, const ducky_err *err);
void op_free(ducky_op *op);
void op_recycle(ducky_engine *e, ducky_op *op); /* freed, or kept as e's spare */
void op_bearer_gone(ducky_engine *e);           /* the engine goes: its bearer list too */
double op_due(const ducky_op *op);              /* when it needs a step, or < 0 */

/* ---- fetch.c ---- */
/* An operation was told to lead: starts the fetch unless it is under way. */
void fetch_start(ducky_engine *e, const ducky_op *op);
int fetch_advance(ducky_engine *e, double now); /* 1 if it moved */
void fetch_ended(ducky_engine *e);              /* its transfer ended */
void fetch_abandon(ducky_engine *e);
void fetch_forget(ducky_engine *e); /* after a fork: let go without unlocking */
void fetch_drop_stale(ducky_engine *e, double now);
double fetch_due(const ducky_engine *e);
/* The token conf of e's key, and an asker for who. */
ducky_asker fetch_asker(ducky_engine *e, const void *who);

#endif
