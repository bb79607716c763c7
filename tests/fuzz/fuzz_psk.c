/* SPDX-License-Identifier: MIT */
/*
 * The keys.psk parser (common/tls.c): a file an operator wrote, or one
 * someone else could write. Invariants: every accepted line has a valid
 * identity and a key of 16..64 bytes, identities are unique, and writing
 * the keys back out and parsing again gives the same keys.
 */
#include "../../common/tls.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_psk *k = NULL, *k2 = NULL;
	unsigned n = 0, n2 = 0;
	char why[160], *text;
	size_t len = 0, cap;

	if (rp_psk_parse((const char *)data, size, &k, &n, why, sizeof(why)))
		return 0;
	FUZZ_CHECK(n >= 1);
	cap = (size_t)n * (RP_MAX_IDENTITY + 2 + 2 * RP_PSK_MAX + 1) + 1;
	text = malloc(cap);
	FUZZ_CHECK(text);
	for (unsigned i = 0; i < n; i++) {
		FUZZ_CHECK(rp_identity_valid(k[i].identity, strlen(k[i].identity)));
		FUZZ_CHECK(k[i].key_len >= RP_PSK_MIN && k[i].key_len <= RP_PSK_MAX);
		for (unsigned j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(k[i].identity, k[j].identity));
		len += (size_t)snprintf(text + len, cap - len, "%s:", k[i].identity);
		for (unsigned b = 0; b < k[i].key_len; b++)
			len += (size_t)snprintf(text + len, cap - len, "%02X",
						k[i].key[b]);
		text[len++] = '\n';
	}
	FUZZ_CHECK(rp_psk_parse(text, len, &k2, &n2, why, sizeof(why)) == 0);
	FUZZ_CHECK(n2 == n && !memcmp(k, k2, n * sizeof(*k)));
	free(text);
	free(k);
	free(k2);
	return 0;
}
