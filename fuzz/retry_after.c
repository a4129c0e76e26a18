/* libFuzzer target: ducky_retry_after, a Retry-After value (delta-seconds or an
 * HTTP date) read with curl_getdate. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v = malloc(size + 1);
	if (!v)
		abort();
	memcpy(v, data, size);
	v[size] = '\0';
	/* a fixed "now" keeps runs reproducible: 2027-01-15 08:00:00 UTC */
	double d = ducky_retry_after(v, 1800000000.0);
	if (!(d == -1 || (d >= 0 && !isnan(d))))
		abort();
	free(v);
	return 0;
}
