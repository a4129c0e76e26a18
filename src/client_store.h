/* The store behind the token cache (client_store.c). */
#ifndef DUCKY_CLIENT_STORE_H
#define DUCKY_CLIENT_STORE_H

#include "client.h"

/* The engine's store callbacks for the client's token_cache (ud: the client;
 * no store: load NULL), and where a stored token is said to come from. */
ducky_host cl_store_host(client *c);

#endif
