/* One API call (call.c): its arguments, and the blocking calls over the
 * engine; what client:start() and client:batch() share of it. */
#ifndef DUCKY_CALL_H
#define DUCKY_CALL_H

#include "client.h"

/* A call being read: where its arguments are, and what they say. */
typedef struct call {
	int at[3];        /* stack indexes of the method, the path and the options (0: none) */
	const char *what; /* the prefix of its messages ("client:request") */
	struct curl_slist **extra; /* where its own headers go (owned by the caller) */
	ducky_buf *url;            /* where its URL goes (owned by the caller) */
	char method[32];
	ducky_call k; /* checked; its strings alive while the stack and the buffers are */
} call;

/* Reads one call's arguments into k, its own headers into *k->extra and its
 * URL into *k->url. Raises for misuse (messages start with k->what); returns
 * -1 with err for a URL it refuses. Leaves exactly one value on the stack:
 * the body (or nil), which must stay alive until the call is started. */
int cl_parse_call(lua_State *L, client *c, call *k, ducky_err *err);
/* request()'s arguments (method, path, options at 2, 3, 4) into the client's
 * buffers for a single call. */
int cl_parse_single(lua_State *L, client *c, call *k, ducky_err *err);

/* Pushes the names of request()'s options, in an array (ducky.REQUEST_OPTIONS). */
void cl_push_call_options(lua_State *L);

int cl_ping(lua_State *L);           /* client:ping() */
int cl_ping_protected(lua_State *L); /* client:ping_protected() */
int cl_request(lua_State *L);        /* client:request(method, path, opts) */

#endif
