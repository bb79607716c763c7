/* SPDX-License-Identifier: MIT */
/*
 * The metrics endpoint: its HTTP request parser (common/metrics_http.c),
 * which reads whatever reaches the metrics port, and the escaping of a
 * label value (common/metrics.c). Invariants: the parser answers one of
 * its four results and a reason with every refusal; an accepted head ends
 * with a line feed within the input, parses the same on its own, and no
 * proper prefix of it is accepted or refused (it asks for more); the input
 * as a label value renders as one line and unescapes to itself, bytes
 * outside printable ASCII as '?'.
 */
#include <errno.h>

#include "../../common/metrics.h"
#include "fuzz.h"

static void check_label(const uint8_t *data, size_t size)
{
	static const struct rp_mfam f = { "x", RP_M_GAUGE, NULL, "h" };
	char *v = malloc(size + 1), *p, *q;
	struct rp_mout o;
	size_t n = 0;

	FUZZ_CHECK(v);
	memcpy(v, data, size);
	v[size] = 0; /* a label value is a C string: up to the first NUL */
	rp_mout_init(&o, RP_MFMT_OPENMETRICS);
	rp_m_family(&o, &f);
	rp_m_u64(&o, &(struct rp_label){ "l", v }, 1, 1);
	rp_m_end(&o);
	FUZZ_CHECK(o.err == 0);
	p = strstr(o.p, "\nx{l=\"");
	FUZZ_CHECK(p);
	p += 6;
	q = strstr(p, "\"} 1\n# EOF\n");
	FUZZ_CHECK(q && !memchr(p, '\n', (size_t)(q - p)));
	for (char *s = p; s < q; s++, n++) {
		char want = v[n], got = *s;

		if (got == '\\') {
			s++;
			FUZZ_CHECK(*s == '\\' || *s == '"' || *s == 'n');
			got = *s == 'n' ? '\n' : *s;
		} else {
			FUZZ_CHECK(got != '"');
		}
		if (want != '\n' && ((unsigned char)want < 0x20 ||
				     (unsigned char)want >= 0x7f))
			want = '?';
		FUZZ_CHECK(want && got == want);
	}
	FUZZ_CHECK(v[n] == 0);
	rp_mout_free(&o);
	free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *why = NULL;
	struct rp_http_req r, r2;
	int ret;

	ret = rp_http_parse(buf, size, &r, &why);
	FUZZ_CHECK(ret == 0 || ret == -EAGAIN || ret == -EINVAL ||
		   ret == -EPROTONOSUPPORT);
	if (ret == -EINVAL || ret == -EPROTONOSUPPORT)
		FUZZ_CHECK(why && *why);
	if (ret == 0) {
		FUZZ_CHECK(r.head_len > 0 && r.head_len <= size);
		FUZZ_CHECK(data[r.head_len - 1] == '\n');
		FUZZ_CHECK(!(r.get && r.head) && (r.minor >= 0 && r.minor <= 9));
		FUZZ_CHECK(!r.openmetrics || (r.q_om > 0 && r.q_om <= 1000));
		FUZZ_CHECK(rp_http_parse(buf, r.head_len, &r2, &why) == 0);
		FUZZ_CHECK(!memcmp(&r, &r2, sizeof(r)));
		for (size_t k = r.head_len; k-- > 0;)
			FUZZ_CHECK(rp_http_parse(buf, k, &r2, &why) == -EAGAIN);
	}
	check_label(data, size);
	return 0;
}
