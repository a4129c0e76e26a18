/* Request header lists (see hlist.h). */
#include "hlist.h"

#include <string.h>
#include <strings.h>

#include "util.h"

int ducky_headers_has(const struct curl_slist *list, const char *line)
{
	size_t nl = strcspn(line, ":;");
	for (; list; list = list->next)
		if (strncasecmp(list->data, line, nl) == 0 && strcspn(list->data, ":;") == nl)
			return 1;
	return 0;
}

int ducky_headers_append(struct curl_slist **list, const char *line)
{
	struct curl_slist *n = curl_slist_append(*list, line);
	if (!n)
		return -1;
	*list = n;
	return 0;
}

int ducky_headers_add_default(struct curl_slist **list, const char *line)
{
	return ducky_headers_has(*list, line) ? 0 : ducky_headers_append(list, line);
}

struct curl_slist *ducky_headers_merge(const struct curl_slist *extra,
                                       const struct curl_slist *base)
{
	struct curl_slist *l = NULL;
	for (int pass = 0; pass < 2; pass++)
		for (const struct curl_slist *p = pass ? base : extra; p; p = p->next) {
			if (pass && ducky_headers_has(extra, p->data))
				continue;
			if (ducky_headers_append(&l, p->data)) {
				ducky_headers_free(l);
				return NULL;
			}
		}
	return l;
}

void ducky_headers_free(struct curl_slist *list)
{
	for (struct curl_slist *p = list; p; p = p->next)
		ducky_wipe(p->data, strlen(p->data));
	curl_slist_free_all(list);
}

int ducky_headers_next(const char *block, size_t len, const char **pos, const char **name,
                       const char **value)
{
	const char *p = *pos ? *pos : block;
	if (!p || p >= block + len)
		return 0;
	*name = p;
	*value = p + strlen(p) + 1;
	*pos = *value + strlen(*value) + 1;
	return 1;
}
