/* Operations (see engine.h): token -> send -> retry after a back-off -> a 401
 * replayed once with a new token -> the answer. Each step of that is a state
 * the engine advances; nothing here waits. */
#include "engine_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the bearer list of the current token ------------------------------------- */

static void bearer_free(bearer *b)
{
	ducky_headers_free(b->list);
	free(b);
}

/* A reference to the list that sends e's current token (made once per token). */
static bearer *bearer_get(ducky_engine *e, ducky_err *err)
{
	const ducky_tokref *t = e->conf.tok;
	if (e->bearer && e->bearer->gen == t->gen) {
		e->bearer->refs++;
		return e->bearer;
	}
	ducky_buf line = {0};
	bearer *b = calloc(1, sizeof *b);
	int bad = !b || ducky_buf_adds(&line, "Authorization: Bearer ") ||
	          ducky_buf_add(&line, t->token, t->len) ||
	          ducky_headers_append(&b->list, line.data);
	for (const struct curl_slist *p = e->conf.api_headers; p && !bad; p = p->next)
		bad = ducky_headers_append(&b->list, p->data);
	ducky_buf_free(&line);
	if (bad) {
		if (b)
			bearer_free(b);
		ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
		return NULL;
	}
	b->token = b->list->data + strlen("Authorization: Bearer ");
	b->gen = t->gen;
	if (e->bearer && e->bearer->refs == 0)
		bearer_free(e->bearer);
	e->bearer = b;
	b->refs = 1;
	return b;
}

static void bearer_put(ducky_engine *e, bearer **bp)
{
	bearer *b = *bp;
	*bp = NULL;
	if (b && --b->refs == 0 && (!e || b != e->bearer))
		bearer_free(b);
}

/* ---- the end ----------------------------------------------------------------------- */

static void drop_attempt(ducky_op *op)
{
	if (op->e)
		eng_unsend(op->e, &op->x);
	bearer_put(op->e, &op->bearer);
	ducky_headers_free(op->headers);
	op->headers = NULL;
}

void op_finish(ducky_op *op, const ducky_err *err)
{
	if (op->state == OP_DONE)
		return;
	drop_attempt(op);
	op->res.attempts = op->x.attempts;
	ducky_err_clear(&op->res.err);
	if (err && err->kind != DUCKY_OK) { /* err's attempts: a token exchange's */
		ducky_err_copy(&op->res.err, err);
		op->res.err.attempts = err->attempts + op->x.attempts;
	}
	op->state = OP_DONE;
	if (op->e) {
		if (op->res.err.kind != DUCKY_OK ||
		    (!op->token_only && (op->res.ans.status < 200 || op->res.ans.status >= 300)))
			op->e->conf.st->errors++;
		op->e->finished++;
	}
}

static void fail(ducky_op *op, ducky_kind kind, const char *what)
{
	ducky_err err;
	ducky_err_init(&err);
	ducky_fail(&err, kind, "%s %.300s: %s", op->method, op->url, what);
	op_finish(op, &err);
	ducky_err_clear(&err);
}

void ducky_op_cancel(ducky_op *op)
{
	if (op->state != OP_DONE) {
		fail(op, DUCKY_E_CANCELLED, "cancelled");
		if (op->e) { /* a host waiting on the descriptor learns it at once */
			io_wake(op->e);
			eng_after_call(op->e);
		}
	}
}

void op_bearer_gone(ducky_engine *e)
{
	if (e->bearer && e->bearer->refs == 0)
		bearer_free(e->bearer);
	e->bearer = NULL; /* else the last operation that holds it frees it */
}

/* Everything an operation owns but its buffers. */
static void op_clear(ducky_op *op)
{
	drop_attempt(op);
	bearer_put(op->e, &op->bearer);
	free(op->body);
	op->body = NULL;
	ducky_headers_free(op->extra);
	op->extra = NULL;
	ducky_err_clear(&op->res.err);
	ducky_wipe_free(op->res.token, op->res.token_len);
	op->res.token = NULL;
}

void op_free(ducky_op *op)
{
	op_clear(op);
	ducky_buf_free(&op->urlb);
	ducky_answer_free(&op->res.ans);
	free(op);
}

/* A sequence of calls reuses one operation and its buffers (URL, answer):
 * no allocation for them once they have grown. */
void op_recycle(ducky_engine *e, ducky_op *op)
{
	op->e = e;
	op_clear(op);
	op->e = NULL;
	if (e->spare) {
		op_free(op);
		return;
	}
	op->urlb.len = 0;
	op->res.ans.body.len = op->res.ans.head.len = op->res.ans.nheaders = 0;
	op->res.ans.status = 0;
	e->spare = op;
}

/* A zeroed operation: e's spare (its buffers kept), or a new one. */
static ducky_op *op_new(ducky_engine *e)
{
	static _Atomic unsigned long serial;
	ducky_op *op = e->spare;
	if (op) {
		ducky_buf urlb = op->urlb;
		ducky_answer ans = op->res.ans;
		e->spare = NULL;
		memset(op, 0, sizeof *op);
		op->urlb = urlb;
		op->res.ans = ans;
	} else if (!(op = calloc(1, sizeof *op))) {
		return NULL;
	}
	op->serial = ++serial;
	return op;
}

/* ---- the token ---------------------------------------------------------------------- */

/* The token is in hand (e->conf.tok): count it, say so, and finish a token()
 * or make the attempt's headers. */
static void got_token(ducky_op *op, const ducky_token_info *info)
{
	ducky_engine *e = op->e;
	ducky_from from = DUCKY_FROM_MEMORY;
	ducky_stats *st = e->conf.st;
	double left = e->conf.tok->expires - ducky_now();
	(void)info;
	if (e->f.lead_op == op->serial) { /* it led the fetch: where from, or why stale */
		if (e->f.gen && e->f.gen == e->conf.tok->gen)
			from = e->f.from;
		if (e->f.stale) {
			st->stale_tokens++;
			eng_emit(e, &(ducky_event){.event = "stale_token",
			                           .reason = e->f.stale,
			                           .seconds_left = &left,
			                           .fingerprint = eng_fingerprint(e)});
		}
		e->f.lead_op = 0;
		e->f.stale = NULL;
	}
	st->tokens[from]++;
	if (from == DUCKY_FROM_MEMORY)
		st->token_cache_hits++;
	else if (from != DUCKY_FROM_EXCHANGE)
		st->token_store_hits++;
	eng_emit(e, &(ducky_event){.event = "token",
	                           .source = ducky_from_names[from],
	                           .seconds_left = &left,
	                           .fingerprint = eng_fingerprint(e)});
	if (op->state == OP_DONE) /* cancelled by a callback's finalizer: nothing more */
		return;
	if (!op->token_only) {
		op->state = OP_READY;
		return;
	}
	const ducky_tokref *t = e->conf.tok;
	if (!(op->res.token = ducky_strndup(t->token, t->len))) {
		fail(op, DUCKY_E_LIMIT, "out of memory");
		return;
	}
	op->res.token_len = t->len;
	op->res.expires = t->expires;
	op->res.from = from;
	memcpy(op->res.fingerprint, eng_fingerprint(e), sizeof op->res.fingerprint);
	op_finish(op, NULL);
}

static int get_token(ducky_op *op)
{
	ducky_engine *e = op->e;
	ducky_token_info info;
	ducky_err err;
	op_state was = op->state;
	if (!op->auth) {
		op->state = OP_READY;
		return 1;
	}
	if (e->conf.creds->problem.kind != DUCKY_OK) { /* a key refused: not even a cached token */
		op_finish(op, &e->conf.creds->problem);
		return 1;
	}
	ducky_err_init(&err);
	switch (ducky_token_acquire(&op->ask, e->conf.tok, &info, &err)) {
	case DUCKY_TOK_HIT:
		op->ask.seen = 0;
		got_token(op, &info);
		break;
	case DUCKY_TOK_LEAD:
		fetch_start(e, op);
		op->state = OP_WAIT_TOKEN;
		break;
	case DUCKY_TOK_WAIT:
		op->state = OP_WAIT_TOKEN;
		break;
	case DUCKY_TOK_FAIL:
		op->ask.seen = 0;
		op_finish(op, &err);
		break;
	}
	ducky_err_clear(&err);
	return op->state != was || op->state == OP_READY;
}

/* ---- the send -------------------------------------------------------------------------- */

static int send_attempt(ducky_op *op)
{
	ducky_engine *e = op->e;
	ducky_err err;
	const struct curl_slist *base = e->conf.api_headers;
	ducky_err_init(&err);
	if (op->auth) {
		bearer_put(e, &op->bearer);
		if (!(op->bearer = bearer_get(e, &err)))
			goto failed;
		base = op->bearer->list;
	}
	ducky_headers_free(op->headers);
	op->headers = NULL;
	if (op->extra && !(base = op->headers = ducky_headers_merge(op->extra, base))) {
		ducky_fail(&err, DUCKY_E_LIMIT, "out of memory");
		goto failed;
	}
	op->x.req.headers = base;
	if (eng_send(e, &op->x, op, &err)) {
		err.attempts = 0; /* op->x.attempts counts them */
		goto failed;
	}
	op->state = OP_SENDING;
	return 1;
failed:
	op_finish(op, &err);
	ducky_err_clear(&err);
	return 1;
}

/* After a 401 with the token: dropped (if the cache still holds that token)
 * and replayed once with a new one, unless a burst of 401s paces the drops. */
static int replay_401(ducky_op *op)
{
	ducky_engine *e = op->e;
	if (!op->auth || op->res.replayed || !op->bearer)
		return 0;
	if (ducky_engine_drop_token(e, op->bearer->token, op->deadline) < 0)
		return 0;
	op->res.replayed = 1;
	op->x.req.replays++; /* the replay spends none of the retries */
	e->conf.st->replays_401++;
	eng_emit(e, &(ducky_event){.event = "replay_401"});
	drop_attempt(op);
	op->state = OP_TOKEN;
	return 1;
}

void op_ended(ducky_op *op)
{
	ducky_engine *e = op->e;
	ducky_http *h = op->x.h;
	ducky_retry_event ev;
	ducky_err err;
	ducky_err_init(&err);
	int r = ducky_http_outcome(h, &op->x.req, op->x.rc, op->x.attempts, &ev, &err);
	if (r == 1) {
		drop_attempt(op);
		eng_retry_event(e, &ev);
		op->x.not_before = ducky_now() + ev.wait;
		if (op->state != OP_DONE)
			op->state = OP_READY;
	} else if (r == 0 && h->ans.status == 401 && replay_401(op)) {
		/* back to the token */
	} else if (r == 0) {
		ducky_answer a = op->res.ans; /* keep the answer: swap buffers, no copy */
		op->res.ans = h->ans;
		h->ans = a;
		op_finish(op, NULL);
	} else {
		err.attempts = 0; /* op->x.attempts counts them */
		op_finish(op, &err);
	}
	ducky_err_clear(&err);
}

/* ---- advancing ---------------------------------------------------------------------------- */

int op_advance(ducky_op *op, double now)
{
	switch (op->state) {
	case OP_TOKEN:
		return get_token(op);
	case OP_WAIT_TOKEN:
		op->state = OP_TOKEN; /* ask again: cheap, and a stalled leader is taken over */
		if (get_token(op) && op->state != OP_WAIT_TOKEN)
			return 1;
		/* the fetch it leads ends by the same deadline, with a better error;
		 * a later one goes on for the others */
		if (now >= op->deadline &&
		    !(op->e->f.lead_op == op->serial && op->e->f.state != F_IDLE &&
		      op->e->f.deadline <= op->deadline)) {
			fail(op, DUCKY_E_TIMEOUT, "timed out waiting for a token exchange");
			return 1;
		}
		return 0;
	case OP_READY:
		if (now < op->x.not_before)
			return 0;
		return send_attempt(op);
	case OP_SENDING:
	case OP_DONE:
		break;
	}
	return 0;
}

double op_due(const ducky_op *op)
{
	switch (op->state) {
	case OP_TOKEN:
		return 0;
	case OP_WAIT_TOKEN:
		return op->deadline;
	case OP_READY:
		return op->x.not_before;
	default:
		return -1;
	}
}

/* ---- starting --------------------------------------------------------------------------- */

static int copy_call(ducky_op *op, const ducky_call *k)
{
	size_t n = strlen(k->method);
	if (n >= sizeof op->method)
		n = sizeof op->method - 1;
	memcpy(op->method, k->method, n);
	op->method[n] = '\0';
	if (ducky_buf_adds(&op->urlb, k->url))
		return -1;
	op->url = op->urlb.data;
	if (k->body && !(op->body = malloc(k->body_len ? k->body_len : 1)))
		return -1;
	if (k->body)
		memcpy(op->body, k->body, k->body_len);
	if (k->extra && !(op->extra = ducky_headers_merge(k->extra, NULL)))
		return -1;
	return 0;
}

ducky_op *ducky_op_start(ducky_engine *e, const ducky_call *k, ducky_err *err)
{
	eng_forked(e);
	ducky_op *op = op_new(e);
	double now = ducky_now();
	if (!op || copy_call(op, k)) {
		if (op)
			op_free(op);
		ducky_fail(err, DUCKY_E_LIMIT, "out of memory");
		return NULL;
	}
	ducky_err_init(&op->res.err);
	op->held = 1;
	op->auth = k->auth || k->token_only;
	op->token_only = k->token_only;
	op->deadline = now + k->timeout;
	if (k->deadline > 0 && k->deadline < op->deadline)
		op->deadline = k->deadline;
	op->res.method = op->method;
	op->res.url = op->url;
	op->ask = fetch_asker(e, (const void *)(uintptr_t)op->serial);
	op->x.req = (ducky_req){.method = op->method,
	                        .url = op->url,
	                        .body = op->body,
	                        .body_len = k->body_len,
	                        .idempotent = ducky_idempotent(op->method),
	                        .deadline = op->deadline,
	                        .connect_timeout = e->conf.connect_timeout,
	                        .retries = k->retries,
	                        .max_retry_after = e->conf.max_retry_after};
	op->state = OP_TOKEN;
	eng_add_op(e, op);
	if (!k->token_only)
		e->conf.st->requests++;
	e->in_step++; /* a finalizer run by a callback marks, never frees */
	op_advance(op, now);
	e->in_step--;
	eng_after_call(e);
	return op;
}

int ducky_op_done(const ducky_op *op)
{
	return op->state == OP_DONE;
}

const ducky_result *ducky_op_result(const ducky_op *op)
{
	return &op->res;
}
