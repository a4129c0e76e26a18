/* The client's engine: made on first use from the client's settings, with the
 * host callbacks it runs — the log (client.c), the token endpoint's answer
 * (client_exchange.c) and the store (client_store.c). */
#include "answer.h"
#include "client_engine.h"
#include "client_exchange.h"
#include "client_store.h"

static void host_event(void *ud, const ducky_event *ev)
{
	cl_emit(ud, ev);
}

ducky_engine *cl_engine(lua_State *L, client *c)
{
	if (c->eng)
		return c->eng;
	ducky_err err;
	ducky_engine_conf conf = {
	    .http = &c->conf,
	    .creds = &c->creds,
	    .api_headers = c->api_headers,
	    .token = {.refresh_margin = c->lim.refresh_margin,
	              .auth_backoff = c->lim.auth_backoff,
	              .max_per_hour = c->lim.max_per_hour},
	    .connect_timeout = c->lim.connect_timeout,
	    .max_retry_after = c->lim.max_retry_after,
	    .timeout = c->lim.timeout,
	    .tok = &c->tok,
	    .st = &c->st,
	    .host = cl_store_host(c),
	};
	conf.host.ud = c;
	conf.host.event = c->ref_log == LUA_NOREF ? NULL : host_event;
	conf.host.read_token = cl_read_token;
	ducky_err_init(&err);
	if (!(c->eng = ducky_engine_new(&conf, &err))) {
		lua_pushstring(L, err.message ? err.message : "out of memory");
		ducky_err_clear(&err);
		lua_error(L);
	}
	return c->eng;
}

void cl_wait(client *c, ducky_op *op)
{
	while (!ducky_op_done(op)) {
		ducky_engine_wait(c->eng, 3600);
		ducky_engine_step(c->eng);
	}
}

int cl_call(lua_State *L, client *c, const ducky_call *k)
{
	ducky_err err;
	ducky_err_init(&err);
	ducky_op *op = ducky_op_start(cl_engine(L, c), k, &err);
	if (!op)
		return cl_push_error(L, c, &err);
	cl_wait(c, op);
	int n = cl_push_result(L, c, ducky_op_result(op));
	ducky_op_release(op);
	return n;
}
