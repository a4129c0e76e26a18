/* One API call (call.c): its arguments, headers, the send, the 401 replay and
 * the answer; what client:batch() shares of it. */
#ifndef DUCKY_CALL_H
#define DUCKY_CALL_H

#include "client.h"

/* A call's arguments, read and checked. */
typedef struct call {
	char method[32];
	const char *url;
	struct curl_slist *extra; /* the call's own headers, or NULL */
	const char *body;         /* NULL: none */
	size_t body_len;
	int auth, retries;
	double timeout;
} call;

/* Reads one call's arguments (method at mi, path at pi, options at oi or 0)
 * into k, its headers into *extra and its URL into *url. Raises for misuse
 * (messages start with `what`); returns -1 with err for a URL it refuses.
 * Leaves exactly one value on the stack: the body (or nil), which must stay
 * alive while the call runs. */
int cl_parse_call(lua_State *L, client *c, const int at[3], const char *what, call *k,
                  struct curl_slist **extra, ducky_buf *url, ducky_err *err);
/* The API headers and "Authorization: Bearer …" for the client's current
 * token, rebuilt only when the token changes; NULL with err when out of memory. */
struct curl_slist *cl_auth_headers(client *c, ducky_err *err);
/* An HTTP answer as `res` (returns 1) or `nil, err` (returns 2). */
int cl_push_answer(lua_State *L, client *c, const ducky_http *h, const call *k, int attempts,
                   int replayed, ducky_err *err);

int cl_ping(lua_State *L);           /* client:ping() */
int cl_ping_protected(lua_State *L); /* client:ping_protected() */
int cl_request(lua_State *L);        /* client:request(method, path, opts) */

#endif
