/* client:batch(): the binding over batch.c (libcurl's multi interface). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* ---- batch ----------------------------------------------------------- */

typedef struct bitem {
	ducky_batch_item it; /* first: batch.c hands it back */
	char method[32];
	ducky_buf url;
	struct curl_slist *extra;
} bitem;

void cl_free_batch(client *c)
{
	for (size_t i = 0; i < c->nbitems; i++) {
		ducky_batch_item_free(&c->bitems[i].it);
		ducky_buf_free(&c->bitems[i].url);
		curl_slist_free_all(c->bitems[i].extra);
	}
	free(c->bitems);
	c->bitems = NULL;
	c->nbitems = 0;
}

/* Each attempt gets its own header list: a token refresh mid-batch must not
 * free a list a transfer in flight still points to. */
static int batch_prepare(void *ud, ducky_batch_item *it)
{
	client *c = ud;
	struct curl_slist *base = c->api_headers;
	curl_slist_free_all(it->headers);
	it->headers = NULL;
	if (it->auth) {
		if (!(base = cl_auth_headers(c, &it->err)))
			return -1;
		it->token_gen = c->tok.gen;
	}
	if (!(it->headers = cl_merge_headers(((bitem *)it)->extra, base)) && base)
		return ducky_fail(&it->err, DUCKY_E_LIMIT, "out of memory");
	it->req.headers = it->headers;
	return 0;
}

/* A 401 in the batch: the first refreshes the token once; items that sent an
 * older token are replayed with the new one; a 401 on the new one is final. */
static int batch_refresh(void *ud, ducky_batch_item *it)
{
	client *c = ud;
	if (it->token_gen == c->tok.gen) {
		ducky_token_ops ops = cl_token_ops(c);
		if (c->batch_refreshed)
			return -1;
		c->batch_refreshed = 1;
		ducky_token_invalidate(c->key, c->tok.token, &ops);
		if (cl_get_token(c, &it->err))
			return -1;
	}
	c->st.replays_401++;
	cl_emit(c, "replay_401", NULL, NULL, -1, 0, -1);
	return 0;
}

static int batch_body(lua_State *L)
{
	client *c = cl_self(L);
	ducky_batch_item **order;
	ducky_err err;
	int any_auth = 0;

	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 3);
	if (!lua_isnil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, 3)) {
			lua_pop(L, 1);
			if (lua_type(L, -1) != LUA_TSTRING ||
			    (strcmp(lua_tostring(L, -1), "concurrency") != 0 &&
			     strcmp(lua_tostring(L, -1), "timeout") != 0))
				return luaL_error(L, "batch: unknown option '%s'",
				                  lua_type(L, -1) == LUA_TSTRING
				                      ? lua_tostring(L, -1)
				                      : luaL_typename(L, -1));
		}
	}
	size_t n = ducky_rawlen(L, 2);
	size_t concurrency =
	    (size_t)(lua_isnil(L, 3) ? 8 : cl_opt_number(L, 3, "concurrency", 8, 1, 1000));
	double timeout =
	    lua_isnil(L, 3) ? c->timeout : cl_opt_number(L, 3, "timeout", c->timeout, 0.001, 1e6);
	double start = ducky_now(), deadline = start + timeout;

	cl_free_batch(c);
	if (n && !(c->bitems = calloc(n, sizeof *c->bitems)))
		return luaL_error(L, "out of memory");
	c->nbitems = n;
	order = lua_newuserdata(L, n ? n * sizeof *order : 1); /* 4 */
	lua_createtable(L, (int)n, 0);                         /* 5: the bodies, kept alive */
	for (size_t i = 0; i < n; i++) {
		bitem *b = &c->bitems[i];
		call k;
		char what[48];
		snprintf(what, sizeof what, "batch item %zu", i + 1);
		order[i] = &b->it;
		ducky_err_init(&b->it.err);
		lua_rawgeti(L, 2, (int)i + 1);
		if (!lua_istable(L, -1))
			return luaL_error(L, "%s: not a { method, path, opts } table", what);
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		lua_rawgeti(L, -3, 3);
		int top = lua_gettop(L);
		int rc = cl_parse_call(L, c, top - 2, top - 1, top, what, &k, b->method, &b->extra,
		                       &b->url, &b->it.err);
		lua_rawseti(L, 5, (int)i + 1);
		lua_settop(L, 5);
		b->it.req =
		    (ducky_req){b->method,
		                b->url.data,
		                NULL,
		                k.body,
		                k.body_len,
		                strcmp(b->method, "POST") != 0 && strcmp(b->method, "PATCH") != 0,
		                start + k.timeout < deadline ? start + k.timeout : deadline,
		                c->connect_timeout,
		                k.retries,
		                c->max_retry_after};
		b->it.auth = k.auth;
		b->it.done = rc != 0;
		any_auth |= k.auth && !rc;
	}
	ducky_err_init(&err);
	if (n && ducky_pool_open(&c->pool, concurrency, &c->conf, &err))
		return cl_push_error(L, c, &err);

	/* one token for the whole batch, fetched before it starts */
	c->deadline = deadline;
	c->call_retries = c->retries;
	c->batch_refreshed = 0;
	if (any_auth && cl_get_token(c, &err) != 0)
		for (size_t i = 0; i < n; i++)
			if (!order[i]->done && order[i]->auth) {
				ducky_err_copy(&order[i]->err, &err);
				order[i]->done = 1;
			}
	ducky_err_clear(&err);
	size_t todo = 0;
	for (size_t i = 0; i < n; i++)
		if (!order[i]->done)
			order[todo++] = order[i];
	ducky_batch_ops ops = {c, batch_prepare, batch_refresh, cl_on_retry};
	ducky_batch_run(&c->pool, order, todo, concurrency, &ops);

	c->st.requests += (lua_Integer)n;
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		ducky_batch_item *it = &c->bitems[i].it;
		lua_createtable(L, 0, 1);
		if (it->err.kind != DUCKY_OK) {
			cl_push_error(L, c, &it->err);
			lua_setfield(L, -3, "err");
			lua_pop(L, 1);
		} else if (cl_push_answer(L, c, &it->res, &it->err, it->attempts, it->replayed,
		                          it->req.method, it->req.url) == 1) {
			lua_setfield(L, -2, "res");
		} else {
			lua_setfield(L, -3, "err");
			lua_pop(L, 1);
		}
		lua_rawseti(L, -2, (int)i + 1);
	}
	cl_free_batch(c); /* the answers are Lua values now */
	return 1;
}

int c_batch(lua_State *L)
{
	return cl_guarded(L, batch_body);
}
