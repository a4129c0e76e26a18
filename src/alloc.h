/* libcurl and OpenSSL set up once per process, with memory that is wiped when
 * it is freed, so that no copy of a secret or a token they made (a request
 * buffer, a TLS record) outlives its use. Plain C. */
#ifndef DUCKY_ALLOC_H
#define DUCKY_ALLOC_H

#include "err.h"

/* Sets libcurl (and, first, OpenSSL's allocator) up; ducky calls it before
 * anything else, from luaopen_ducky. 0, or -1 with err. */
int ducky_global_init(ducky_err *err);

/* While on, every block libcurl and OpenSSL free in this thread is wiped, the
 * large ones and the download buffer too; returns the previous setting, to put back. */
int ducky_wipe_all(int on);

/* libcurl's download buffer on ducky's handles (CURLOPT_BUFFERSIZE): not the
 * 16 KiB of libcurl's default and of its send buffer, so that a free can tell
 * the one block that is not wiped (it holds what the server sent) from the
 * send buffer (a long request's lines: the bearer token), which is. */
#define DUCKY_RECV_BUFFER 16000L

#endif
