/* SPDX-License-Identifier: MIT */
/* The metrics endpoint: the exposition text and the HTTP request parser
 * (common/metrics.c, common/metrics_http.c). */
#include <math.h>
#include <stdlib.h>

#include "../../common/metrics.h"
#include "../../common/rp.h"
#include "tests.h"

static const struct rp_mfam f_counter = {
	"t_faults", RP_M_COUNTER, NULL, "Faults \\ served\nhere \"now\""
};
static const struct rp_mfam f_gauge = {
	"t_resident_ratio", RP_M_GAUGE, "ratio", "Resident"
};
static const struct rp_mfam f_hist = {
	"t_latency_seconds", RP_M_HISTOGRAM, "seconds", "Latency"
};

static void t_text_format(void)
{
	struct rp_mout o;
	struct rp_label l = { "pid", "12" };

	rp_mout_init(&o, RP_MFMT_TEXT);
	rp_m_family(&o, &f_counter);
	rp_m_u64(&o, &l, 1, 7);
	rp_m_family(&o, &f_gauge);
	rp_m_dbl(&o, NULL, 0, 0.5);
	rp_m_end(&o);
	CU_ASSERT_EQUAL(o.err, 0);
	CU_ASSERT_STRING_EQUAL(o.p,
		"# HELP t_faults_total Faults \\\\ served\\nhere \"now\"\n"
		"# TYPE t_faults_total counter\n"
		"t_faults_total{pid=\"12\"} 7\n"
		"# HELP t_resident_ratio Resident\n"
		"# TYPE t_resident_ratio gauge\n"
		"t_resident_ratio 0.5\n");
	rp_mout_free(&o);
}

static void t_openmetrics_format(void)
{
	struct rp_mout o;
	struct rp_label l = { "pid", "12" };

	rp_mout_init(&o, RP_MFMT_OPENMETRICS);
	rp_m_family(&o, &f_counter);
	rp_m_u64(&o, &l, 1, 7);
	rp_m_family(&o, &f_gauge);
	rp_m_dbl(&o, NULL, 0, 1);
	rp_m_end(&o);
	CU_ASSERT_EQUAL(o.err, 0);
	CU_ASSERT_STRING_EQUAL(o.p,
		"# HELP t_faults Faults \\\\ served\\nhere \\\"now\\\"\n"
		"# TYPE t_faults counter\n"
		"t_faults_total{pid=\"12\"} 7\n"
		"# HELP t_resident_ratio Resident\n"
		"# TYPE t_resident_ratio gauge\n"
		"# UNIT t_resident_ratio ratio\n"
		"t_resident_ratio 1\n"
		"# EOF\n");
	rp_mout_free(&o);
}

/* Label values: backslash, double quote and newline escaped; bytes that
 * are not printable ASCII replaced; the line stays one line. */
static void t_label_escaping(void)
{
	struct rp_mout o;
	struct rp_label l[2] = { { "region", "a\\b\"c\nd\re\x01\xff" },
				 { "x", "" } };

	for (int fmt = 0; fmt < 2; fmt++) {
		rp_mout_init(&o, (enum rp_mfmt)fmt);
		rp_m_family(&o, &f_counter);
		rp_m_u64(&o, l, 2, 1);
		CU_ASSERT_EQUAL(o.err, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(o.p,
			"t_faults_total{region=\"a\\\\b\\\"c\\nd?e??\",x=\"\"} 1\n"));
		rp_mout_free(&o);
	}
}

static void t_bad_names(void)
{
	static const struct rp_mfam bad[] = {
		{ "9lives", RP_M_GAUGE, NULL, "h" },
		{ "a-b", RP_M_GAUGE, NULL, "h" },
		{ "x_total", RP_M_COUNTER, NULL, "h" },
		{ "x_bytes", RP_M_GAUGE, "seconds", "h" }, /* unit not its suffix */
		{ "bytes", RP_M_GAUGE, "bytes", "h" },     /* nothing before it */
	};
	struct rp_mout o;
	struct rp_label l = { "__x", "1" }, le = { "le", "1" };

	for (unsigned i = 0; i < RP_ARRAY_SIZE(bad); i++) {
		rp_mout_init(&o, RP_MFMT_OPENMETRICS);
		rp_m_family(&o, &bad[i]);
		CU_ASSERT_EQUAL(o.err, -EINVAL);
		rp_mout_free(&o);
	}
	rp_mout_init(&o, RP_MFMT_TEXT);
	rp_m_family(&o, &f_gauge);
	rp_m_u64(&o, &l, 1, 1);
	CU_ASSERT_EQUAL(o.err, -EINVAL);
	rp_mout_free(&o);
	rp_mout_init(&o, RP_MFMT_TEXT);
	rp_m_family(&o, &f_gauge);
	rp_m_u64(&o, &le, 1, 1); /* le belongs to histograms */
	CU_ASSERT_EQUAL(o.err, -EINVAL);
	rp_mout_free(&o);
	/* a sample outside a family, a negative counter */
	rp_mout_init(&o, RP_MFMT_TEXT);
	rp_m_u64(&o, NULL, 0, 1);
	CU_ASSERT_EQUAL(o.err, -EINVAL);
	rp_mout_free(&o);
	rp_mout_init(&o, RP_MFMT_TEXT);
	rp_m_family(&o, &f_counter);
	rp_m_dbl(&o, NULL, 0, -1.0);
	CU_ASSERT_EQUAL(o.err, -EINVAL);
	rp_mout_free(&o);
	CU_ASSERT_TRUE(rp_m_name_valid("rpage:x_y9"));
	CU_ASSERT_FALSE(rp_m_label_valid("a:b"));
}

/* Buckets are cumulative, never decrease, end with +Inf equal to _count;
 * bounds that do not increase are refused. */
static void t_histogram(void)
{
	const double le[3] = { 2e-6, 4e-6, 0.5 };
	const uint64_t b[4] = { 3, 0, 5, 2 };
	const uint64_t want[4] = { 3, 3, 8, 10 };
	const char *bounds[4] = { "2e-06", "4e-06", "0.5", "+Inf" };
	struct rp_label l = { "pid", "other" };
	struct rp_mout o;
	const char *p;
	uint64_t last = 0;

	rp_mout_init(&o, RP_MFMT_OPENMETRICS);
	rp_m_family(&o, &f_hist);
	rp_m_hist(&o, &l, 1, le, b, 3, 1.25);
	rp_m_end(&o);
	CU_ASSERT_EQUAL_FATAL(o.err, 0);
	p = o.p;
	for (int i = 0; i < 4; i++) {
		char key[96];
		unsigned long long v;

		snprintf(key, sizeof(key),
			 "t_latency_seconds_bucket{pid=\"other\",le=\"%s\"} ",
			 bounds[i]);
		p = strstr(p, key);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		p += strlen(key);
		v = strtoull(p, NULL, 10);
		CU_ASSERT_EQUAL(v, want[i]);
		CU_ASSERT(v >= last);
		last = v;
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(p, "\nt_latency_seconds_count{pid=\"other\"} 10\n"
					 "t_latency_seconds_sum{pid=\"other\"} 1.25\n# EOF\n"));
	rp_mout_free(&o);
	for (int k = 0; k < 2; k++) {
		const double bad[3] = { 2e-6, k ? 2e-6 : INFINITY, 0.5 };

		rp_mout_init(&o, RP_MFMT_TEXT);
		rp_m_family(&o, &f_hist);
		rp_m_hist(&o, &l, 1, bad, b, 3, 1.0);
		CU_ASSERT_EQUAL(o.err, -EINVAL);
		rp_mout_free(&o);
	}
}

static void t_doubles(void)
{
	static const double v[] = { 0.1, 2e-6, 8.388608, 1.0 / 3, 1e300, 0 };
	char b[32];

	for (unsigned i = 0; i < RP_ARRAY_SIZE(v); i++) {
		rp_m_fmt_double(b, sizeof(b), v[i]);
		CU_ASSERT_EQUAL(strtod(b, NULL), v[i]);
	}
	rp_m_fmt_double(b, sizeof(b), 0.1);
	CU_ASSERT_STRING_EQUAL(b, "0.1");
	rp_m_fmt_double(b, sizeof(b), INFINITY);
	CU_ASSERT_STRING_EQUAL(b, "+Inf");
	rp_m_fmt_double(b, sizeof(b), NAN);
	CU_ASSERT_STRING_EQUAL(b, "NaN");
}

static int parse(const char *s, struct rp_http_req *r)
{
	const char *why = NULL;
	int ret = rp_http_parse(s, strlen(s), r, &why);

	CU_ASSERT(ret != -EINVAL || (why && *why));
	return ret;
}

static void t_http_parse(void)
{
	struct rp_http_req r;
	static const char *const bad[] = {
		"GET /metrics\r\n\r\n",
		"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET metrics HTTP/1.1\r\nHost: x\r\n\r\n",
		"G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /me\x01trics HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /metrics HTTP/1.1\r\n\r\n",                  /* no Host */
		"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nHost x\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nHo st: x\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nHost: x\x01y\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nHost: x\rX\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /metrics HTTX/1.1\r\nHost: x\r\n\r\n",
		"GET /metrics HTTP/1.10\r\nHost: x\r\n\r\n",
	};
	const char *why;

	CU_ASSERT_EQUAL(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
	CU_ASSERT_TRUE(r.get && r.metrics && !r.openmetrics && r.minor == 1);
	CU_ASSERT_EQUAL(r.head_len, 34);
	/* bare LF, HTTP/1.0 without Host, a query, HEAD */
	CU_ASSERT_EQUAL(parse("HEAD /metrics?x=1 HTTP/1.0\n\nrest", &r), 0);
	CU_ASSERT_TRUE(r.head && r.metrics && r.minor == 0);
	CU_ASSERT_EQUAL(r.head_len, 28);
	CU_ASSERT_EQUAL(parse("POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
	CU_ASSERT_TRUE(!r.get && !r.head && r.metrics);
	CU_ASSERT_EQUAL(parse("GET /metricsx HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
	CU_ASSERT_FALSE(r.metrics);
	CU_ASSERT_EQUAL(parse("GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n", &r),
			-EPROTONOSUPPORT);
	/* incomplete heads ask for more */
	CU_ASSERT_EQUAL(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n", &r), -EAGAIN);
	CU_ASSERT_EQUAL(parse("GET /metrics HTTP/1.1\r", &r), -EAGAIN);
	CU_ASSERT_EQUAL(parse("", &r), -EAGAIN);
	for (unsigned i = 0; i < RP_ARRAY_SIZE(bad); i++) {
		int ret = rp_http_parse(bad[i], strlen(bad[i]), &r, &why);

		if (ret != -EINVAL)
			fprintf(stderr, "accepted (%d): %s\n", ret, bad[i]);
		CU_ASSERT_EQUAL(ret, -EINVAL);
	}
	/* a NUL inside the head is a control character */
	CU_ASSERT_EQUAL(rp_http_parse("GET /metrics HTTP/1.1\r\nHost: a\0b\r\n\r\n",
				      36, &r, &why), -EINVAL);
}

/* Content negotiation: what Prometheus 2.42 sends picks OpenMetrics;
 * weights decide; a version we do not write does not count. */
static void t_http_accept(void)
{
	static const struct { const char *accept; bool om; } c[] = {
		{ "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", true },
		{ "application/openmetrics-text", true },
		{ "Application/OpenMetrics-Text ; Version=1.0.0", true },
		{ "text/plain;version=0.0.4", false },
		{ "*/*", false },
		{ "application/openmetrics-text;version=0.0.1", false },
		{ "application/openmetrics-text;q=0", false },
		{ "application/openmetrics-text;q=0.4, text/plain;q=0.5", false },
		{ "text/plain;q=0.4, application/openmetrics-text;q=0.5", true },
		{ "application/openmetrics-text;q=bogus", false },
		{ "", false },
	};
	char req[512];
	struct rp_http_req r;

	for (unsigned i = 0; i < RP_ARRAY_SIZE(c); i++) {
		snprintf(req, sizeof(req),
			 "GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: %s\r\n\r\n",
			 c[i].accept);
		CU_ASSERT_EQUAL_FATAL(parse(req, &r), 0);
		if (r.openmetrics != c[i].om)
			fprintf(stderr, "Accept: %s: openmetrics %d\n",
				c[i].accept, r.openmetrics);
		CU_ASSERT_EQUAL(r.openmetrics, c[i].om);
	}
	/* two Accept headers: the best weight of each kind counts */
	CU_ASSERT_EQUAL(parse("GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: text/plain;q=0.2\r\nAccept: application/openmetrics-text;q=0.3\r\n\r\n", &r), 0);
	CU_ASSERT_TRUE(r.openmetrics);
}

int register_metrics_tests(void)
{
	CU_pSuite s = CU_add_suite("openmetrics", NULL, NULL);

	if (!s)
		return -1;
	ADD(s, t_text_format);
	ADD(s, t_openmetrics_format);
	ADD(s, t_label_escaping);
	ADD(s, t_bad_names);
	ADD(s, t_histogram);
	ADD(s, t_doubles);
	ADD(s, t_http_parse);
	ADD(s, t_http_accept);
	return 0;
}
