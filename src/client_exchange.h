/* The token exchange's answer (client_exchange.c). */
#ifndef DUCKY_CLIENT_EXCHANGE_H
#define DUCKY_CLIENT_EXCHANGE_H

#include "client.h"

/* The engine's read_token callback (ud: the client): 0 with out filled from
 * the token endpoint's answer a, or -1 with err. */
int cl_read_token(void *ud, const ducky_answer *a, ducky_fresh *out, ducky_err *err);

#endif
