/* SPDX-License-Identifier: MIT */
/*
 * Raw latency samples and how rpage-bench reports them: perftest's latency
 * layout (t_typical is the median), its JSON keys, and CDF files. Every
 * figure is computed from the sorted raw samples, never from a histogram.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <stdarg.h>
#include <unistd.h>

#include "bench.h"

void bench_lat_init(struct bench_lat *l, const char *name, uint64_t bytes)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->bytes = bytes;
}

int bench_lat_add(struct bench_lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		uint64_t *p = realloc(l->ns, cap * sizeof(*p));

		if (!p)
			return -1;
		l->ns = p;
		l->cap = cap;
	}
	l->ns[l->n++] = ns;
	return 0;
}

void bench_lat_skip(struct bench_lat *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->why, sizeof(l->why), fmt, ap);
	va_end(ap);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least q of all at or below. */
static double rank_us(const struct bench_lat *l, double q)
{
	size_t k = (size_t)ceil(q * (double)l->n);

	if (k == 0)
		k = 1;
	if (k > l->n)
		k = l->n;
	return (double)l->ns[k - 1] / 1e3;
}

void bench_lat_compute(struct bench_lat *l)
{
	double sum = 0, sq = 0;

	if (!l->n)
		return;
	qsort(l->ns, l->n, sizeof(*l->ns), cmp_u64);
	for (size_t i = 0; i < l->n; i++)
		sum += (double)l->ns[i] / 1e3;
	l->t_avg = sum / (double)l->n;
	for (size_t i = 0; i < l->n; i++) {
		double d = (double)l->ns[i] / 1e3 - l->t_avg;

		sq += d * d;
	}
	l->t_stdev = sqrt(sq / (double)l->n);
	l->t_min = (double)l->ns[0] / 1e3;
	l->t_max = (double)l->ns[l->n - 1] / 1e3;
	l->t_typical = rank_us(l, 0.5);
	l->p99 = rank_us(l, 0.99);
	l->p999 = rank_us(l, 0.999);
}

void bench_lat_free(struct bench_lat *l)
{
	free(l->ns);
	l->ns = NULL;
	l->n = l->cap = 0;
}

double bench_ratio(double a, double b)
{
	return b > 0 ? a / b : 0.0;
}

void bench_lat_header(FILE *f)
{
	fprintf(f, "---------------------------------------------------------------------------------------\n");
	fprintf(f, " #bytes #iterations t_min[usec] t_max[usec] t_typical[usec] t_avg[usec] t_stdev[usec] 99%% percentile[usec] 99.9%% percentile[usec]   path  vs floor(p50 p99)\n");
}

void bench_lat_line(FILE *f, const struct bench_lat *l,
		    const struct bench_lat *floor)
{
	if (l->why[0]) {
		fprintf(f, " %-6" PRIu64 " %-11s %-11s %-11s %-15s %-11s %-13s %-20s %-22s   %-9s not measured: %s\n",
			l->bytes, "-", "-", "-", "-", "-", "-", "-", "-",
			l->name, l->why);
		return;
	}
	fprintf(f, " %-6" PRIu64 " %-11zu %-11.2f %-11.2f %-15.2f %-11.2f %-13.2f %-20.2f %-22.2f   %-9s",
		l->bytes, l->n, l->t_min, l->t_max, l->t_typical, l->t_avg,
		l->t_stdev, l->p99, l->p999, l->name);
	if (!floor || floor->why[0] || !floor->n)
		fprintf(f, " (no floor)\n");
	else if (floor == l)
		fprintf(f, " floor\n");
	else
		fprintf(f, " p50 x%.2f p99 x%.2f\n",
			bench_ratio(l->t_typical, floor->t_typical),
			bench_ratio(l->p99, floor->p99));
}

/* JSON string escaping for names and reasons (plain ASCII text here). */
void bench_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

void bench_lat_json(FILE *f, const struct bench_lat *l,
		    const struct bench_lat *floor)
{
	fprintf(f, "{\"name\":");
	bench_json_str(f, l->name);
	fprintf(f, ",\"bytes\":%" PRIu64, l->bytes);
	if (l->why[0]) {
		fprintf(f, ",\"available\":false,\"reason\":");
		bench_json_str(f, l->why);
		fputc('}', f);
		return;
	}
	fprintf(f, ",\"available\":true,\"iterations\":%zu,\"t_min\":%.3f,\"t_max\":%.3f"
		   ",\"t_typical\":%.3f,\"t_avg\":%.3f,\"t_stdev\":%.3f"
		   ",\"percentile_99\":%.3f,\"percentile_99.9\":%.3f",
		l->n, l->t_min, l->t_max, l->t_typical, l->t_avg, l->t_stdev,
		l->p99, l->p999);
	if (floor && !floor->why[0] && floor->n)
		fprintf(f, ",\"ratio_p50\":%.3f,\"ratio_p99\":%.3f",
			bench_ratio(l->t_typical, floor->t_typical),
			bench_ratio(l->p99, floor->p99));
	fputc('}', f);
}

/*
 * One block per measured path: a title line, then "latency_us fraction"
 * for every sample in order; blocks are separated by two blank lines
 * (gnuplot's `index`).
 */
int bench_cdf_write(const char *path, struct bench_lat *const *l, unsigned n)
{
	FILE *f = fopen(path, "w");
	bool first = true;

	if (!f)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		if (l[i]->why[0] || !l[i]->n)
			continue;
		if (!first)
			fprintf(f, "\n\n");
		first = false;
		fprintf(f, "%s\n", l[i]->name);
		for (size_t k = 0; k < l[i]->n; k++)
			fprintf(f, "%.3f %.6f\n", (double)l[i]->ns[k] / 1e3,
				(double)(k + 1) / (double)l[i]->n);
	}
	return fclose(f) ? -1 : 0;
}

static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && c) {
			c++;
			while (*c == ' ' || *c == '\t')
				c++;
			c[strcspn(c, "\n")] = 0;
			snprintf(buf, len, "%s", c);
			break;
		}
	}
	fclose(f);
}

void bench_machine_print(FILE *f)
{
	struct utsname u;
	char cpu[256];

	cpu_model(cpu, sizeof(cpu));
	if (uname(&u))
		memset(&u, 0, sizeof(u));
	fprintf(f, "# machine: %ld online CPUs, %s, kernel %s\n",
		sysconf(_SC_NPROCESSORS_ONLN), cpu, u.release);
}

void bench_machine_json(FILE *f)
{
	struct utsname u;
	char cpu[256];

	cpu_model(cpu, sizeof(cpu));
	if (uname(&u))
		memset(&u, 0, sizeof(u));
	fprintf(f, "{\"nproc\":%ld,\"cpu\":", sysconf(_SC_NPROCESSORS_ONLN));
	bench_json_str(f, cpu);
	fprintf(f, ",\"kernel\":");
	bench_json_str(f, u.release);
	fputc('}', f);
}

void bench_target(FILE *f, const char *what, double value, double limit,
		  bool at_least)
{
	bool pass = at_least ? value >= limit : value <= limit;

	fprintf(f, "# target: %-44s %6.2f %s %.2f  %s\n", what, value,
		at_least ? ">=" : "<=", limit, pass ? "PASS" : "MISS");
}
