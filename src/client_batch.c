/* client:batch(): the binding over batch.c (libcurl's multi interface). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "client_batch.h"
#include "client_token.h"

#define ITEMS_MT "ducky.batch_items"

typedef struct bitem {
	ducky_batch_item it; /* first: batch.c hands it back */
	call k;
	ducky_buf url;
	struct curl_slist *extra;
} bitem;

/* A batch's items, in a userdata whose finalizer frees them if a raise ends
 * the batch early; freed at once when it ends normally. */
typedef struct items_box {
	bitem *items;
	size_t n;
} items_box;

static void free_box(items_box *box)
{
	for (size_t i = 0; i < box->n; i++) {
		ducky_batch_item_free(&box->items[i].it);
		ducky_buf_free(&box->items[i].url);
		ducky_headers_free(box->items[i].extra);
	}
	free(box->items);
	box->items = NULL;
	box->n = 0;
}

static int free_items(lua_State *L)
{
	free_box(luaL_checkudata(L, 1, ITEMS_MT));
	return 0;
}

void cl_batch_open(lua_State *L)
{
	if (luaL_newmetatable(L, ITEMS_MT)) {
		lua_pushcfunction(L, free_items);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
}

/* A batch under way: the call (its first member, for cl_on_retry) and the one
 * refresh after a 401 it may make. */
typedef struct batch_run {
	cl_run r;
	int refreshed;
} batch_run;

/* Each attempt gets its own header list: a token refresh mid-batch must not
 * free a list a transfer in flight still points to. */
static int batch_prepare(void *ud, ducky_batch_item *it)
{
	client *c = ((batch_run *)ud)->r.c;
	struct curl_slist *base = c->api_headers;
	ducky_headers_free(it->headers);
	it->headers = NULL;
	if (it->auth) {
		if (!(base = cl_auth_headers(c, &it->err)))
			return -1;
		it->token_gen = c->tok.gen;
	}
	if (!(it->headers = ducky_headers_merge(((bitem *)it)->extra, base)) && base)
		return ducky_fail(&it->err, DUCKY_E_LIMIT, "out of memory");
	it->req.headers = it->headers;
	return 0;
}

/* A 401 in the batch: the first refreshes the token once; items that sent an
 * older token are replayed with the new one; a 401 on the new one is final. */
static int batch_refresh(void *ud, ducky_batch_item *it)
{
	batch_run *b = ud;
	client *c = b->r.c;
	token_source src;
	if (it->token_gen == c->tok.gen) {
		if (b->refreshed)
			return -1;
		b->refreshed = 1;
		cl_drop_token(&b->r);
		if (cl_get_token(&b->r, &src, &it->err))
			return -1;
	}
	c->st.replays_401++;
	cl_emit(&b->r, &(event){.event = "replay_401"});
	return 0;
}

/* What batch()'s options table says. */
typedef struct batch_opts {
	double concurrency, timeout;
} batch_opts;

static const cl_opt batch_options[] = {
    {"concurrency", CL_T(LUA_TNUMBER), NULL, 1, 1000, offsetof(batch_opts, concurrency)},
    {"timeout", CL_T(LUA_TNUMBER), NULL, 0.001, 1e6, offsetof(batch_opts, timeout)},
    {NULL, 0, NULL, 0, 0, 0},
};

#define BODIES 5 /* the stack index of the table that keeps the items' bodies alive */

/* Reads item i (1-based) of the list at 2 into b. */
static void read_item(lua_State *L, client *c, size_t i, bitem *b, double deadline)
{
	int base = lua_gettop(L);
	char what[48];
	snprintf(what, sizeof what, "client:batch: item %zu", i);
	ducky_err_init(&b->it.err);
	lua_rawgeti(L, 2, (int)i);
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: not a { method, path, opts } table", what);
	lua_rawgeti(L, -1, 1);
	lua_rawgeti(L, -2, 2);
	lua_rawgeti(L, -3, 3);
	int top = lua_gettop(L), at[3] = {top - 2, top - 1, top};
	int rc = cl_parse_call(L, c, at, what, &b->k, &b->extra, &b->url, &b->it.err);
	lua_rawseti(L, BODIES, (int)i);
	lua_settop(L, base);
	b->it.timeout = b->k.timeout;
	b->it.req = (ducky_req){.method = b->k.method,
	                        .url = b->k.url,
	                        .body = b->k.body,
	                        .body_len = b->k.body_len,
	                        .idempotent = ducky_idempotent(b->k.method),
	                        .deadline = deadline,
	                        .connect_timeout = c->lim.connect_timeout,
	                        .retries = b->k.retries,
	                        .max_retry_after = c->lim.max_retry_after};
	b->it.auth = b->k.auth;
	b->it.done = rc != 0;
}

/* One token for the whole batch, fetched before it starts; its failure fails
 * the items that need it. Returns the items still to run, in order. */
static size_t first_token(batch_run *b, ducky_batch_item **order, size_t n)
{
	ducky_err err;
	token_source src;
	int any_auth = 0;
	size_t todo = 0;
	for (size_t i = 0; i < n; i++)
		any_auth |= order[i]->auth && !order[i]->done;
	ducky_err_init(&err);
	if (any_auth && cl_get_token(&b->r, &src, &err) != 0)
		for (size_t i = 0; i < n; i++)
			if (!order[i]->done && order[i]->auth) {
				ducky_err_copy(&order[i]->err, &err);
				order[i]->done = 1;
			}
	ducky_err_clear(&err);
	for (size_t i = 0; i < n; i++)
		if (!order[i]->done)
			order[todo++] = order[i];
	return todo;
}

/* The results, in the list's order: { res = … } or { err = … } each. */
static void push_results(lua_State *L, client *c, bitem *items, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		ducky_batch_item *it = &items[i].it;
		lua_createtable(L, 0, 1);
		int pushed = it->err.kind != DUCKY_OK
		                 ? cl_push_error(L, c, &it->err)
		                 : cl_push_answer(L, c, &it->res, &items[i].k, it->attempts,
		                                  it->replayed, &it->err);
		if (pushed == 1) {
			lua_setfield(L, -2, "res");
		} else {
			lua_setfield(L, -3, "err");
			lua_pop(L, 1); /* the nil before it */
		}
		lua_rawseti(L, -2, (int)i + 1);
	}
}

static int batch_body(lua_State *L)
{
	client *c = cl_self(L);
	batch_opts o = {.concurrency = 8, .timeout = c->lim.timeout};
	ducky_err err;

	lua_settop(L, 3);
	if (!lua_istable(L, 2) || !(lua_isnil(L, 3) || lua_istable(L, 3)))
		return luaL_error(L,
		                  "client:batch: expects a list of requests and an options "
		                  "table, not %s and %s",
		                  luaL_typename(L, 2), luaL_typename(L, 3));
	if (!lua_isnil(L, 3))
		cl_read_options(L, 3, batch_options, &o, "client:batch");
	lua_settop(L, 3);
	size_t n = ducky_rawlen(L, 2);
	double start = ducky_now();
	items_box *box = ducky_newuserdata(L, sizeof *box); /* 4 */
	box->items = NULL;
	box->n = 0;
	luaL_getmetatable(L, ITEMS_MT);
	lua_setmetatable(L, 4);
	lua_createtable(L, (int)n, 0);                                              /* BODIES */
	ducky_batch_item **order = ducky_newuserdata(L, n ? n * sizeof *order : 1); /* 6 */
	if (n && !(box->items = calloc(n, sizeof *box->items)))
		return luaL_error(L, "out of memory");
	box->n = n;
	for (size_t i = 0; i < n; i++) {
		order[i] = &box->items[i].it;
		read_item(L, c, i + 1, &box->items[i], start + o.timeout);
	}
	ducky_err_init(&err);
	if (n && ducky_pool_open(&c->pool, (size_t)o.concurrency, &c->conf, &err))
		return cl_push_error(L, c, &err);
	batch_run b = {.r = cl_start(L, c, o.timeout, c->lim.retries)};
	size_t todo = first_token(&b, order, n);
	ducky_batch_ops ops = {
	    .ud = &b, .prepare = batch_prepare, .refresh = batch_refresh, .on_retry = cl_on_retry};
	ducky_batch_run(&c->pool, order, todo, (size_t)o.concurrency, &ops);
	c->st.requests += (lua_Integer)n;
	push_results(L, c, box->items, n);
	free_box(box); /* the answers are Lua values now */
	return 1;
}

int cl_batch(lua_State *L)
{
	return cl_guarded(L, batch_body, "batch");
}
