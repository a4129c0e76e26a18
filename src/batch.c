/* Many requests at once over libcurl's multi interface (see batch.h). */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

int ducky_pool_open(ducky_pool *p, size_t n, const ducky_http_conf *conf, ducky_err *err)
{
	if (!p->multi) {
		if (!(p->multi = curl_multi_init()))
			return ducky_fail(err, DUCKY_E_LIMIT, "curl_multi_init failed");
		curl_multi_setopt(p->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	}
	if (n <= p->n)
		return 0;
	/* the array of pointers may move; the records libcurl points into never do */
	ducky_http **slots = realloc(p->slots, n * sizeof *slots);
	if (!slots)
		return ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
	p->slots = slots;
	char *busy = realloc(p->busy, n);
	if (!busy)
		return ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
	p->busy = busy;
	for (; p->n < n; p->n++) {
		ducky_http *h = calloc(1, sizeof *h);
		if (!h)
			return ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
		if (ducky_http_open(h, conf, err)) {
			ducky_http_close(h);
			free(h);
			return -1;
		}
		p->slots[p->n] = h;
		p->busy[p->n] = 0;
	}
	return 0;
}

void ducky_pool_close(ducky_pool *p)
{
	for (size_t i = 0; i < p->n; i++) {
		if (p->busy[i] && p->multi)
			curl_multi_remove_handle(p->multi, p->slots[i]->easy);
		ducky_http_close(p->slots[i]);
		free(p->slots[i]);
	}
	free(p->slots);
	free(p->busy);
	if (p->multi) {
		int was = ducky_http_wipe_all(1); /* the connections it kept */
		curl_multi_cleanup(p->multi);
		ducky_http_wipe_all(was);
	}
	memset(p, 0, sizeof *p);
}

void ducky_batch_item_free(ducky_batch_item *it)
{
	ducky_buf_free(&it->res.body);
	ducky_buf_free(&it->res.head);
	ducky_err_clear(&it->err);
	ducky_headers_free(it->headers); /* they hold the token */
	it->headers = NULL;
}

static void finish(ducky_batch_item *it, size_t *left)
{
	it->done = 1;
	(*left)--;
}

/* Starts what may start now; returns the number running. */
static size_t start(ducky_pool *p, ducky_batch_item **items, size_t n, size_t running,
                    size_t concurrency, const ducky_batch_ops *ops, size_t *left)
{
	for (size_t i = 0; i < n && running < concurrency; i++) {
		ducky_batch_item *it = items[i];
		double remaining, now = ducky_now();
		if (it->done || it->running || it->not_before > now)
			continue;
		if (!it->attempts && now + it->timeout < it->req.deadline) /* as request() */
			it->req.deadline = now + it->timeout;
		if (ducky_time_left(&it->req, it->attempts + 1, &remaining, &it->err)) {
			finish(it, left);
			continue;
		}
		if (ops->prepare(ops->ud, it)) {
			it->err.attempts = it->attempts;
			finish(it, left);
			continue;
		}
		size_t s = 0;
		while (p->busy[s])
			s++;
		ducky_http_setup(p->slots[s], &it->req, remaining);
		curl_easy_setopt(p->slots[s]->easy, CURLOPT_PRIVATE, (void *)it);
		if (curl_multi_add_handle(p->multi, p->slots[s]->easy) != CURLM_OK) {
			ducky_fail(&it->err, DUCKY_E_LIMIT, "curl_multi_add_handle failed");
			finish(it, left);
			continue;
		}
		p->busy[s] = 1;
		it->slot = s;
		it->running = 1;
		it->attempts++;
		running++;
	}
	return running;
}

/* One transfer ended: retry it, replay it after a 401, or keep its outcome. */
static void ended(ducky_pool *p, CURLMsg *msg, const ducky_batch_ops *ops, size_t *left)
{
	ducky_batch_item *it = NULL;
	curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&it);
	ducky_http *h = p->slots[it->slot];
	CURLcode rc = msg->data.result;
	ducky_retry_event ev;

	curl_multi_remove_handle(p->multi, h->easy);
	p->busy[it->slot] = 0;
	it->running = 0;
	int r = ducky_http_outcome(h, &it->req, rc, it->attempts, &ev, &it->err);
	if (r == 1) {
		if (ops->on_retry)
			ops->on_retry(ops->ud, &ev);
		it->not_before = ducky_now() + ev.wait;
		return;
	}
	if (r == 0 && h->status == 401 && it->auth && !it->replayed) {
		it->replayed = 1;
		if (ops->refresh(ops->ud, it) == 0) {
			it->not_before = 0;
			return;
		}
		if (it->err.kind != DUCKY_OK) {
			it->err.attempts = it->attempts;
			finish(it, left);
			return;
		}
	}
	if (r == 0) { /* keep the answer: swap buffers with the slot, no copy */
		ducky_buf body = it->res.body, head = it->res.head;
		it->res.body = h->body;
		it->res.head = h->head;
		it->res.nheaders = h->nheaders;
		it->res.status = h->status;
		h->body = body;
		h->head = head;
	}
	finish(it, left);
}

void ducky_batch_run(ducky_pool *p, ducky_batch_item **items, size_t n, size_t concurrency,
                     const ducky_batch_ops *ops)
{
	size_t left = n, running = 0;
	if (concurrency > p->n)
		concurrency = p->n;
	while (left) {
		running = start(p, items, n, running, concurrency, ops, &left);
		int still = 0, queued;
		CURLMsg *msg;
		curl_multi_perform(p->multi, &still);
		while ((msg = curl_multi_info_read(p->multi, &queued)) != NULL)
			if (msg->msg == CURLMSG_DONE) {
				ended(p, msg, ops, &left);
				running--;
			}
		if (!left)
			break;
		/* sleep until a transfer moves, or the next retry is due (at most 1 s) */
		double now = ducky_now(), next = now + 1.0;
		for (size_t i = 0; i < n; i++)
			if (!items[i]->done && !items[i]->running && items[i]->not_before < next)
				next = items[i]->not_before;
		if (running < concurrency && next <= now)
			continue; /* something can start right away */
		int ms = (int)((next - now) * 1000.0) + 1;
		curl_multi_poll(p->multi, NULL, 0, ms > 0 ? ms : 1, NULL);
	}
}
