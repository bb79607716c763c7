/* SPDX-License-Identifier: MIT */
/*
 * The exposition text of the metrics endpoint (see metrics.h), in the two
 * dialects scrapers read:
 *  - OpenMetrics 1.0.0: a counter family "x" has the sample "x_total",
 *    families may carry a UNIT line, HELP escapes '"' too, "# EOF" ends it;
 *  - Prometheus text 0.0.4: the TYPE and HELP lines name the sample
 *    itself ("x_total" for a counter), no UNIT, no end marker.
 * Label values are escaped the same way in both (\\, \", \n). No thread;
 * a struct rp_mout belongs to its caller.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"
#include "rp.h"

void rp_mout_init(struct rp_mout *o, enum rp_mfmt fmt)
{
	memset(o, 0, sizeof(*o));
	o->fmt = fmt;
}

void rp_mout_free(struct rp_mout *o)
{
	free(o->p);
	o->p = NULL;
	o->len = o->cap = 0;
}

static bool reserve(struct rp_mout *o, size_t more)
{
	size_t cap = o->cap ? o->cap : 4096;
	char *p;

	if (o->err)
		return false;
	if (o->len + more + 1 <= o->cap)
		return true;
	while (cap < o->len + more + 1)
		cap *= 2;
	p = realloc(o->p, cap);
	if (!p) {
		o->err = -ENOMEM;
		return false;
	}
	o->p = p;
	o->cap = cap;
	return true;
}

static void put(struct rp_mout *o, const char *s, size_t n)
{
	if (!reserve(o, n))
		return;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = 0;
}

static void puts_(struct rp_mout *o, const char *s)
{
	put(o, s, strlen(s));
}

/* @s with backslash and newline escaped, and the double quote when
 * @quote; bytes outside printable ASCII (a label value is UTF-8 text, and
 * ours are names and numbers) become '?'. */
static void put_escaped(struct rp_mout *o, const char *s, bool quote)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '\\')
			puts_(o, "\\\\");
		else if (ch == '\n')
			puts_(o, "\\n");
		else if (ch == '"' && quote)
			puts_(o, "\\\"");
		else if (ch < 0x20 || ch >= 0x7f)
			puts_(o, "?");
		else
			put(o, (const char *)&ch, 1);
	}
}

bool rp_m_name_valid(const char *s)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
			return false;
	return true;
}

bool rp_m_label_valid(const char *s)
{
	return rp_m_name_valid(s) && !strchr(s, ':') && strncmp(s, "__", 2);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

static const char *type_name(enum rp_mtype t)
{
	return t == RP_M_COUNTER ? "counter"
	     : t == RP_M_GAUGE	 ? "gauge"
				 : "histogram";
}

void rp_m_family(struct rp_mout *o, const struct rp_mfam *f)
{
	bool om = o->fmt == RP_MFMT_OPENMETRICS;
	/* text 0.0.4 names a counter by its sample */
	const char *sfx = !om && f->type == RP_M_COUNTER ? "_total" : "";

	o->fam = f;
	if (!rp_m_name_valid(f->name) || ends_with(f->name, "_total") ||
	    (f->unit && (!rp_m_label_valid(f->unit) ||
			 !ends_with(f->name, f->unit) ||
			 strlen(f->name) <= strlen(f->unit) ||
			 f->name[strlen(f->name) - strlen(f->unit) - 1] != '_'))) {
		o->err = -EINVAL;
		return;
	}
	puts_(o, "# HELP ");
	puts_(o, f->name);
	puts_(o, sfx);
	puts_(o, " ");
	put_escaped(o, f->help, om);
	puts_(o, "\n# TYPE ");
	puts_(o, f->name);
	puts_(o, sfx);
	puts_(o, " ");
	puts_(o, type_name(f->type));
	puts_(o, "\n");
	if (om && f->unit) {
		puts_(o, "# UNIT ");
		puts_(o, f->name);
		puts_(o, " ");
		puts_(o, f->unit);
		puts_(o, "\n");
	}
}

void rp_m_fmt_double(char *buf, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int p = 1; p <= 17; p++) {
		snprintf(buf, len, "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* name{labels[,le="x"]} value\n */
static void sample(struct rp_mout *o, const char *suffix,
		   const struct rp_label *l, unsigned nl, const char *le,
		   const char *value)
{
	if (!o->fam) {
		o->err = -EINVAL;
		return;
	}
	puts_(o, o->fam->name);
	puts_(o, suffix);
	if (nl || le) {
		puts_(o, "{");
		for (unsigned i = 0; i < nl; i++) {
			if (!rp_m_label_valid(l[i].name) ||
			    !strcmp(l[i].name, "le")) {
				o->err = -EINVAL;
				return;
			}
			puts_(o, i ? ",": "");
			puts_(o, l[i].name);
			puts_(o, "=\"");
			put_escaped(o, l[i].value ? l[i].value : "", true);
			puts_(o, "\"");
		}
		if (le) {
			puts_(o, nl ? ",le=\"" : "le=\"");
			puts_(o, le);
			puts_(o, "\"");
		}
		puts_(o, "}");
	}
	puts_(o, " ");
	puts_(o, value);
	puts_(o, "\n");
}

static const char *value_suffix(const struct rp_mout *o)
{
	return o->fam && o->fam->type == RP_M_COUNTER ? "_total" : "";
}

void rp_m_u64(struct rp_mout *o, const struct rp_label *l, unsigned nl,
	      uint64_t v)
{
	char b[24];

	if (o->fam && o->fam->type == RP_M_HISTOGRAM) {
		o->err = -EINVAL;
		return;
	}
	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	sample(o, value_suffix(o), l, nl, NULL, b);
}

void rp_m_dbl(struct rp_mout *o, const struct rp_label *l, unsigned nl,
	      double v)
{
	char b[32];

	if ((o->fam && o->fam->type == RP_M_HISTOGRAM) ||
	    (o->fam && o->fam->type == RP_M_COUNTER && !(v >= 0))) {
		o->err = -EINVAL;
		return;
	}
	rp_m_fmt_double(b, sizeof(b), v);
	sample(o, value_suffix(o), l, nl, NULL, b);
}

void rp_m_hist(struct rp_mout *o, const struct rp_label *l, unsigned nl,
	       const double *le, const uint64_t *b, unsigned n, double sum)
{
	uint64_t cum = 0;
	char v[32], e[32];

	if (!o->fam || o->fam->type != RP_M_HISTOGRAM) {
		o->err = -EINVAL;
		return;
	}
	for (unsigned i = 0; i <= n; i++) {
		if (i < n && (!isfinite(le[i]) || (i && !(le[i] > le[i - 1])))) {
			o->err = -EINVAL;
			return;
		}
		cum += b[i];
		snprintf(v, sizeof(v), "%llu", (unsigned long long)cum);
		if (i < n)
			rp_m_fmt_double(e, sizeof(e), le[i]);
		sample(o, "_bucket", l, nl, i < n ? e : "+Inf", v);
	}
	snprintf(v, sizeof(v), "%llu", (unsigned long long)cum);
	sample(o, "_count", l, nl, NULL, v);
	rp_m_fmt_double(e, sizeof(e), sum);
	sample(o, "_sum", l, nl, NULL, e);
}

void rp_m_end(struct rp_mout *o)
{
	if (o->fmt == RP_MFMT_OPENMETRICS)
		puts_(o, "# EOF\n");
	o->fam = NULL;
}
