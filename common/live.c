/* SPDX-License-Identifier: MIT */
/*
 * Live migration: what both ends share. The names of the modes and of the
 * switchover reasons (the source decides the reason, the destination
 * reports it, rpage-bench prints both). No threads, no state.
 */
#include "rp.h"

RP_EXPORT int rpage_live_mode_parse(const char *s)
{
	for (int m = RPAGE_LIVE_HYBRID; m <= RPAGE_LIVE_POSTCOPY; m++)
		if (!strcmp(s, rpage_live_mode_name((enum rpage_live_mode)m)))
			return m;
	return -EINVAL;
}

RP_EXPORT const char *rpage_live_mode_name(enum rpage_live_mode m)
{
	switch (m) {
	case RPAGE_LIVE_HYBRID:
		return "hybrid";
	case RPAGE_LIVE_PRECOPY:
		return "precopy";
	case RPAGE_LIVE_POSTCOPY:
		return "postcopy";
	}
	return "?";
}

RP_EXPORT const char *rpage_live_reason_name(enum rpage_live_reason r)
{
	static const char *const n[] = { "none", "converged", "not-converging",
					 "max-rounds", "explicit",
					 "postcopy-only" };

	return (unsigned)r < RP_ARRAY_SIZE(n) ? n[r] : "?";
}
