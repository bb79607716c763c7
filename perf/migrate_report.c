/* SPDX-License-Identifier: MIT */
/*
 * `rpage-bench migrate`: the results, as a human table or one JSON line,
 * from the struct mres both ends filled in. Threads: the bench's main
 * thread, after both children have exited.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../common/rp.h"
#include "bench.h"
#include "migrate.h"
static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

void migrate_print_human(const struct mopt *o, const struct mres *r)
{
	const struct rpage_live_stats *s = &r->src;
	const struct rpage_stats *p = &r->dst.post;
	char rate_s[32];

	snprintf(rate_s, sizeof(rate_s), "%.1f MB/s", o->rate / 1e6);
	printf("# rpage-bench migrate: %.0f MiB, workload %s, %u thread(s), write rate %s, mode %s, %u streams, max downtime %u ms%s%s%s%s%s\n",
	       (double)o->size / 1048576.0,
	       o->kind == WL_SEQ ? "seq" : o->kind == WL_HOT ? "hot" : "rand",
	       o->threads, o->rate < 0 ? "max" : o->rate == 0 ? "0 (idle)" : rate_s,
	       rpage_live_mode_name(o->mode), o->streams, o->max_downtime,
	       o->netns ? ", netns veth" : ", loopback",
	       o->link_rate ? " rate " : "", o->link_rate ? o->link_rate : "",
	       o->link_delay ? " delay " : "", o->link_delay ? o->link_delay : "");
	if (r->tc.measured)
		printf("tracking    %s: first write after protect %.0f ns/page (untracked write %.0f ns/page), collect+re-protect %.0f ns/page; sync uffd-wp: write %.0f ns/page, collect %.0f ns/page\n",
		       r->tc.mode, r->tc.write_tracked_ns, r->tc.write_ns,
		       r->tc.collect_ns, r->tc.sync_write_tracked_ns,
		       r->tc.sync_collect_ns);
	printf("tracking    in this run: %s\n",
	       s->tracking == 1 ? "uffd-wp async + PAGEMAP_SCAN"
	       : s->tracking == 2 ? "uffd-wp synchronous (fallback)" : "none");
	for (uint32_t i = 0; i < s->rounds; i++)
		printf("round %-4u  %8" PRIu64 " pages %9.1f MB %9.1f ms %8.1f MB/s  dirtied %" PRIu64 "\n",
		       i + 1, s->round[i].pages, (double)s->round[i].bytes / 1e6,
		       ms(s->round[i].ns),
		       s->round[i].ns ? (double)s->round[i].bytes * 1e3 / (double)s->round[i].ns : 0,
		       s->round[i].dirtied);
	printf("decision    %s (%s)\n", rpage_live_reason_name(s->reason), s->why);
	printf("switchover  downtime %.1f ms (destination part %.1f ms); %" PRIu64 " pages sent while paused, %" PRIu64 " left to post-copy\n",
	       ms(s->downtime_ns), ms(r->dst.downtime_ns), s->final_pages,
	       s->postcopy_pages);
	printf("post-copy   %.1f ms: %" PRIu64 " faults (%" PRIu64 " pages by fault, %" PRIu64 " by fill), blocked %.1f ms\n",
	       ms(s->postcopy_ns), p->faults, p->pages_by_fault,
	       p->pages_by_fill, ms(p->blocked_ns));
	printf("fault lat   min %.1f  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  avg %.1f us\n",
	       (double)p->lat_min_ns / 1e3, (double)p->lat_p50_ns / 1e3,
	       (double)p->lat_p99_ns / 1e3, (double)p->lat_p999_ns / 1e3,
	       (double)p->lat_max_ns / 1e3, (double)p->lat_avg_ns / 1e3);
	if (p->faults)
		printf("fault hist  (service time of each post-copy fault)\n");
	for (unsigned i = 0; i < RPAGE_LIVE_HIST_BUCKETS; i++) {
		uint64_t n = r->dst.fault_hist[i], mx = 0;

		for (unsigned k = 0; k < RPAGE_LIVE_HIST_BUCKETS; k++)
			mx = RP_MAX(mx, r->dst.fault_hist[k]);
		if (!n)
			continue;
		printf("  %8llu-%-8llu us %8" PRIu64 " %.*s\n",
		       i ? 1ull << i : 0ull, 1ull << (i + 1), n,
		       (int)(1 + 39 * n / mx), "########################################");
	}
	printf("total       %.1f ms (pre-copy %.1f ms)\n", ms(s->total_ns),
	       ms(s->precopy_ns));
	if (s->rounds)
		printf("workload    %.0f steps/s before migration, %.0f during pre-copy (slowdown x%.2f)\n",
		       r->rate_before, r->rate_during,
		       r->rate_during > 0 ? r->rate_before / r->rate_during : 0.0);
	else
		printf("workload    %.0f steps/s before migration (no pre-copy)\n",
		       r->rate_before);
	if (r->rate_post > 0)
		printf("workload    %.0f steps/s on the destination after resume (during post-copy, at least 0.5 s): slowdown x%.2f\n",
		       r->rate_post, r->rate_before / r->rate_post);
	if (r->src_ret)
		printf("source      FAILED: %s\n", strerror(-r->src_ret));
	if (r->dst_ret)
		printf("destination FAILED: %s%s%s\n", strerror(-r->dst_ret),
		       r->dst.why[0] ? ": " : "", r->dst.why);
	if (r->note[0])
		printf("note        %s\n", r->note);
	printf("verify      %s\n",
	       r->verified == 1 ? "PASS: destination memory equals the reference"
	       : r->verified == 0 ? "FAIL: destination memory differs from the reference"
				  : "not checked (no completed migration)");
}

void migrate_print_json(const struct mopt *o, const struct mres *r)
{
	const struct rpage_live_stats *s = &r->src;
	const struct rpage_stats *p = &r->dst.post;

	printf("{\"size\":%" PRIu64 ",\"workload\":\"%s\",\"threads\":%u,\"write_rate_MBps\":%.3f,\"mode\":\"%s\",\"streams\":%u,\"max_downtime_ms\":%u,\"netns\":%s,",
	       o->size, o->kind == WL_SEQ ? "seq" : o->kind == WL_HOT ? "hot" : "rand",
	       o->threads, o->rate / 1e6, rpage_live_mode_name(o->mode),
	       o->streams, o->max_downtime, o->netns ? "true" : "false");
	printf("\"tracking\":\"%s\",\"tracking_cost\":{\"write_ns\":%.1f,\"write_tracked_ns\":%.1f,\"collect_ns\":%.1f,\"sync_write_tracked_ns\":%.1f,\"sync_collect_ns\":%.1f},",
	       s->tracking == 1 ? "async" : s->tracking == 2 ? "sync" : "none",
	       r->tc.write_ns, r->tc.write_tracked_ns, r->tc.collect_ns,
	       r->tc.sync_write_tracked_ns, r->tc.sync_collect_ns);
	printf("\"rounds\":[");
	for (uint32_t i = 0; i < s->rounds; i++)
		printf("%s{\"pages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"ms\":%.3f,\"dirtied\":%" PRIu64 "}",
		       i ? "," : "", s->round[i].pages, s->round[i].bytes,
		       ms(s->round[i].ns), s->round[i].dirtied);
	printf("],\"reason\":\"%s\",\"why\":", rpage_live_reason_name(s->reason));
	bench_json_str(stdout, s->why);
	printf(",\"downtime_ms\":%.3f,\"final_pages\":%" PRIu64 ",\"postcopy_pages\":%" PRIu64 ",\"postcopy_ms\":%.3f,\"precopy_ms\":%.3f,\"total_ms\":%.3f,",
	       ms(s->downtime_ns), s->final_pages, s->postcopy_pages,
	       ms(s->postcopy_ns), ms(s->precopy_ns), ms(s->total_ns));
	printf("\"postcopy\":{\"faults\":%" PRIu64 ",\"pages_by_fault\":%" PRIu64 ",\"pages_by_fill\":%" PRIu64 ",\"blocked_ms\":%.3f,\"latency_us\":{\"min\":%.1f,\"p50\":%.1f,\"p99\":%.1f,\"p99.9\":%.1f,\"max\":%.1f,\"avg\":%.1f}},",
	       p->faults, p->pages_by_fault, p->pages_by_fill, ms(p->blocked_ns),
	       (double)p->lat_min_ns / 1e3, (double)p->lat_p50_ns / 1e3,
	       (double)p->lat_p99_ns / 1e3, (double)p->lat_p999_ns / 1e3,
	       (double)p->lat_max_ns / 1e3, (double)p->lat_avg_ns / 1e3);
	printf("\"fault_hist_us\":[");
	for (unsigned i = 0, first = 1; i < RPAGE_LIVE_HIST_BUCKETS; i++) {
		if (!r->dst.fault_hist[i])
			continue;
		printf("%s{\"lo\":%llu,\"hi\":%llu,\"n\":%" PRIu64 "}",
		       first ? "" : ",", i ? 1ull << i : 0ull, 1ull << (i + 1),
		       r->dst.fault_hist[i]);
		first = 0;
	}
	printf("],");
	printf("\"workload_steps_per_s\":{\"before\":%.1f,\"precopy\":%.1f,\"postcopy\":%.1f},",
	       r->rate_before, r->rate_during, r->rate_post);
	printf("\"precopy_reconnects\":{\"source\":%u,\"dest\":%u},",
	       r->src.reconnects, r->dst.reconnects);
	printf("\"source_error\":%d,\"dest_error\":%d,\"dest_why\":", r->src_ret,
	       r->dst_ret);
	bench_json_str(stdout, r->dst.why);
	printf(",\"note\":");
	bench_json_str(stdout, r->note);
	printf(",\"verified\":%s}\n",
	       r->verified == 1 ? "true" : r->verified == 0 ? "false" : "null");
}
