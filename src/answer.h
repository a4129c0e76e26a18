/* Answers as Lua values (answer.c): `res`, and the one builder of an error
 * from an HTTP answer, for the API and the token endpoint alike. */
#ifndef DUCKY_ANSWER_H
#define DUCKY_ANSWER_H

#include "client.h"

/* Whose answer it is: the API's (its method and URL) or the token endpoint's. */
typedef struct answer_of {
	const char *method, *url; /* NULL method: the token endpoint */
	int replayed;             /* the API answered 401 again after a replay */
} answer_of;

/* Fills err from an answer that is not a success, or a success whose JSON body
 * does not decode (bad_json): status, kind (auth for a 401 from the API and a
 * 400/401/403 from the token endpoint, decode for bad JSON, else http), the
 * OAuth error and description (with every form of the secret masked, for the
 * token endpoint), retry_after, retryable and the message. Leaves the decoded
 * body (or nil) on the stack. */
void cl_answer_error(lua_State *L, client *c, const ducky_answer *a, const answer_of *of,
                     int bad_json, ducky_err *err);

/* An API answer as `res` (returns 1) or `nil, err` (returns 2); attempts into
 * res or err. */
int cl_push_answer(lua_State *L, client *c, const ducky_answer *a, const answer_of *of,
                   int attempts);
/* An operation's outcome as request() (or token()) returns it. */
int cl_push_result(lua_State *L, client *c, const ducky_result *r);

#endif
