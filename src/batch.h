/* Many requests at once over libcurl's multi interface: a pool of easy handles
 * kept between batches (so connections stay alive, HTTP/2 streams multiplex),
 * per-item retries as for a single request, and a hook for the 401 replay.
 * Plain C: the binding prepares headers and refreshes the token. */
#ifndef DUCKY_BATCH_H
#define DUCKY_BATCH_H

#include "http.h"

typedef struct ducky_pool {
	CURLM *multi;
	ducky_http **slots; /* each allocated once: libcurl keeps pointers into it */
	char *busy;
	size_t n;
} ducky_pool;

typedef struct ducky_batch_item {
	ducky_req req;           /* headers: set by ops->prepare before each attempt;
	                            deadline: the batch's, until the item starts */
	double timeout;          /* the item's own, counted from its first attempt */
	int auth;                /* sends the token: a 401 may be replayed once */
	ducky_http res;          /* the answer (status, headers, body); no easy handle */
	ducky_err err;           /* kind != DUCKY_OK: the item failed */
	int attempts, replayed;  /* attempts made; a 401 replay happened */
	double not_before;       /* ducky_now() seconds: a retry waits until then */
	unsigned long token_gen; /* the token generation prepare used */
	struct curl_slist *headers;
	/* scheduling */
	int done, running;
	size_t slot;
} ducky_batch_item;

typedef struct ducky_batch_ops {
	void *ud;
	/* Sets it->req.headers for the current token; -1 fails the item (it->err set). */
	int (*prepare)(void *ud, ducky_batch_item *it);
	/* After a 401 on an item that sends the token: 0 replays it (a fresh token is
	 * in place), -1 ends it (it->err set if the refresh itself failed). */
	int (*refresh)(void *ud, ducky_batch_item *it);
	ducky_retry_fn on_retry;
} ducky_batch_ops;

/* Makes sure the pool has n easy handles configured like conf. */
int ducky_pool_open(ducky_pool *p, size_t n, const ducky_http_conf *conf, ducky_err *err);
void ducky_pool_close(ducky_pool *p);

/* Runs every item to its end (answer or error), at most `concurrency` at once. */
void ducky_batch_run(ducky_pool *p, ducky_batch_item **items, size_t n, size_t concurrency,
                     const ducky_batch_ops *ops);

void ducky_batch_item_free(ducky_batch_item *it);

#endif
