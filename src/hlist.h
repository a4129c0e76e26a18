/* Request header lists ("Name: value" lines in a curl_slist): the client's
 * defaults, a call's own, the bearer line. Each list is owned by whoever made
 * it and freed with ducky_headers_free, which wipes (a line may hold a token
 * or a secret). Plain C. */
#ifndef DUCKY_HLIST_H
#define DUCKY_HLIST_H

#include <curl/curl.h>

/* Appends line to *list; -1: no memory (the list is unchanged). */
int ducky_headers_append(struct curl_slist **list, const char *line);
/* Whether list holds a header named like line ("Name: v", "Name:" or "Name;"). */
int ducky_headers_has(const struct curl_slist *list, const char *line);
/* Appends line unless a header of that name is there (the caller's own wins); -1: no memory. */
int ducky_headers_add_default(struct curl_slist **list, const char *line);
/* extra + base, leaving out base headers that extra names; NULL: no memory (or both empty). */
struct curl_slist *ducky_headers_merge(const struct curl_slist *extra,
                                       const struct curl_slist *base);
/* Wipes every line, then frees the list. */
void ducky_headers_free(struct curl_slist *list);

/* Walks a block of "name\0value\0" pairs: *pos NULL to start; 1 with name
 * and value set, 0 at the end. */
int ducky_headers_next(const char *block, size_t len, const char **pos, const char **name,
                       const char **value);

#endif
