/* SPDX-License-Identifier: MIT */
/*
 * Firecracker's UFFD handshake parser (client/fc.c) against the JSON
 * grammar. A strict RFC 8259 validator, written here independently of
 * the parser, decides whether the input is JSON at all. Invariants:
 * anything rpage_fc_parse accepts is valid JSON (with at most one
 * trailing NUL, which the parser tolerates on purpose), and its ranges
 * pass the checks the parser promises (aligned, no overflow).
 */
#include <stdbool.h>

#include "rpage/rpage.h"
#include "fuzz.h"

struct v {
	const uint8_t *p, *end;
};

static void sp(struct v *v)
{
	while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' ||
				 *v->p == '\n' || *v->p == '\r'))
		v->p++;
}

static bool lit(struct v *v, const char *s)
{
	size_t l = strlen(s);

	if ((size_t)(v->end - v->p) < l || memcmp(v->p, s, l))
		return false;
	v->p += l;
	return true;
}

static bool isdig(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool ishex(uint8_t c)
{
	return isdig(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool number(struct v *v)
{
	if (v->p < v->end && *v->p == '-')
		v->p++;
	if (v->p >= v->end || !isdig(*v->p))
		return false;
	if (*v->p == '0')
		v->p++;
	else
		while (v->p < v->end && isdig(*v->p))
			v->p++;
	if (v->p < v->end && *v->p == '.') {
		v->p++;
		if (v->p >= v->end || !isdig(*v->p))
			return false;
		while (v->p < v->end && isdig(*v->p))
			v->p++;
	}
	if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
		v->p++;
		if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
			v->p++;
		if (v->p >= v->end || !isdig(*v->p))
			return false;
		while (v->p < v->end && isdig(*v->p))
			v->p++;
	}
	return true;
}

/* Strings: escapes as RFC 8259 lists them, no unescaped control byte.
 * (UTF-8 well-formedness is not the parser's business: it only compares
 * member names.) */
static bool string(struct v *v)
{
	if (v->p >= v->end || *v->p != '"')
		return false;
	v->p++;
	while (v->p < v->end) {
		uint8_t c = *v->p++;

		if (c == '"')
			return true;
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		if (v->p >= v->end)
			return false;
		c = *v->p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++)
				if (v->p >= v->end || !ishex(*v->p++))
					return false;
		} else if (!memchr("\"\\/bfnrt", c, 8)) {
			return false;
		}
	}
	return false;
}

static bool value(struct v *v, int depth);

static bool container(struct v *v, int depth, uint8_t close, bool object)
{
	v->p++;
	sp(v);
	if (v->p < v->end && *v->p == close) {
		v->p++;
		return true;
	}
	for (;;) {
		sp(v);
		if (object) {
			if (!string(v))
				return false;
			sp(v);
			if (v->p >= v->end || *v->p++ != ':')
				return false;
		}
		if (!value(v, depth + 1))
			return false;
		sp(v);
		if (v->p >= v->end)
			return false;
		if (*v->p == ',') {
			v->p++;
			continue;
		}
		return *v->p++ == close;
	}
}

static bool value(struct v *v, int depth)
{
	if (depth > 64)
		return false;
	sp(v);
	if (v->p >= v->end)
		return false;
	switch (*v->p) {
	case '"':
		return string(v);
	case '{':
		return container(v, depth, '}', true);
	case '[':
		return container(v, depth, ']', false);
	case 't':
		return lit(v, "true");
	case 'f':
		return lit(v, "false");
	case 'n':
		return lit(v, "null");
	default:
		return number(v);
	}
}

static bool json_valid(const uint8_t *p, size_t n)
{
	struct v v = { p, p + n };

	if (!value(&v, 0))
		return false;
	sp(&v);
	return v.p == v.end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rpage_range *r = NULL;
	unsigned n = 0;
	size_t jl = size;

	if (rpage_fc_parse((const char *)data, size, &r, &n))
		return 0;
	if (jl && data[jl - 1] == 0)
		jl--; /* the one trailing NUL the parser tolerates */
	FUZZ_CHECK(json_valid(data, jl));
	FUZZ_CHECK(n >= 1);
	for (unsigned i = 0; i < n; i++) {
		FUZZ_CHECK(r[i].page_size >= 4096 &&
			   !(r[i].page_size & (r[i].page_size - 1)));
		FUZZ_CHECK(r[i].size && !(r[i].size % r[i].page_size) &&
			   !(r[i].base % r[i].page_size) &&
			   !(r[i].offset % r[i].page_size));
		FUZZ_CHECK(r[i].base + r[i].size > r[i].base &&
			   r[i].offset + r[i].size > r[i].offset);
	}
	free(r);
	return 0;
}
