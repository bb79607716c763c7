/* SPDX-License-Identifier: MIT */
/*
 * rpage: post-copy memory over TCP and RDMA.
 *
 * One umbrella header. Every function returns 0 (or a count) on success
 * and a negative errno on failure; errno itself is never the channel.
 * Handles are opaque. Ownership is stated on every call: "takes" means
 * the library closes/frees it, "borrows" means the caller keeps it.
 */
#ifndef RPAGE_RPAGE_H
#define RPAGE_RPAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RPAGE_VERSION_MAJOR 0
#define RPAGE_VERSION_MINOR 1

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

enum rpage_log_level {
	RPAGE_LOG_ERR = 0,
	RPAGE_LOG_WARN = 1,
	RPAGE_LOG_INFO = 2,
	RPAGE_LOG_DEBUG = 3,
};

/* Messages at or below @level go to stderr (the default is INFO). */
void rpage_set_log_level(enum rpage_log_level level);

/* Returns the library version as a static string, e.g. "0.1". */
const char *rpage_version_string(void);

/* ------------------------------------------------------------------ */
/* Source side: the page server                                        */
/* ------------------------------------------------------------------ */

struct rpage_server;

/* Creates an empty server. Returns 0 and stores the handle in *out. */
int rpage_server_new(struct rpage_server **out);

/*
 * Exports the file at @path (a regular file, a /dev/shm file, a memfd
 * path or a hugetlbfs file) as region @name. The file is opened read-only
 * and kept open; its length and page size (2 MiB etc. on hugetlbfs, else
 * 4096) are taken at this call. Returns the region id (>= 0).
 * -EEXIST: name taken; -EINVAL: empty file or bad name (1..255 bytes of
 * [A-Za-z0-9._-]).
 */
int rpage_server_add_region(struct rpage_server *srv, const char *name,
			    const char *path);

/*
 * Like rpage_server_add_region, for an open descriptor (borrows @fd: it
 * is duplicated). @length must be a multiple of @page_size; @page_size a
 * power of two >= 4096. Returns the region id.
 */
int rpage_server_add_region_fd(struct rpage_server *srv, const char *name,
			       int fd, uint64_t length, uint32_t page_size);

/*
 * Binds and listens on @host:@port (numeric or names; port "0" picks a
 * free one). Returns 0. rpage_server_port() then tells the port.
 */
int rpage_server_listen(struct rpage_server *srv, const char *host,
			const char *port);
int rpage_server_port(const struct rpage_server *srv);

/* Starts the accept thread. Each client connection gets its own thread. */
int rpage_server_start(struct rpage_server *srv);

/* Stops accepting, ends every connection and joins all threads. */
int rpage_server_stop(struct rpage_server *srv);

/* Stops if needed and frees everything, including region descriptors. */
void rpage_server_free(struct rpage_server *srv);

/* Server-wide counters (a snapshot; thread-safe). */
struct rpage_server_stats {
	uint64_t connections;      /* accepted since start */
	uint64_t active;           /* open now */
	uint64_t rejected;         /* closed for bad input */
	uint64_t page_requests;    /* urgent + bulk requests served */
	uint64_t bytes_sent;       /* page payload bytes */
};
int rpage_server_get_stats(struct rpage_server *srv,
			   struct rpage_server_stats *st);

/* ------------------------------------------------------------------ */
/* Destination side: where pages come from                             */
/* ------------------------------------------------------------------ */

enum rpage_transport {
	RPAGE_TRANSPORT_AUTO = 0,
	RPAGE_TRANSPORT_LOCAL = 1,
	RPAGE_TRANSPORT_TCP = 2,
	RPAGE_TRANSPORT_RDMA = 3,
};

const char *rpage_transport_name(enum rpage_transport t);
/* Parses "auto", "local", "tcp", "rdma". Returns the value or -EINVAL. */
int rpage_transport_parse(const char *s);

struct rpage_source;

struct rpage_region_info {
	char name[256];
	uint64_t length;
	uint32_t page_size;
	uint32_t id;
};

/*
 * Connects to an rpage-server at @host:@port with @transport (TCP or
 * AUTO; RDMA when built in), performs the hello and fetches the region
 * table. Returns 0 and a handle in *out.
 * -ECONNREFUSED etc. from the network; -EPROTO: not an rpage server or an
 * incompatible version.
 */
int rpage_source_connect(const char *host, const char *port,
			 enum rpage_transport transport,
			 struct rpage_source **out);

/*
 * A source of pages on this host: the file at @path is region 0 named
 * @name (the "local" transport: lazy restore of a local snapshot).
 */
int rpage_source_open_local(const char *name, const char *path,
			    struct rpage_source **out);

/* Number of regions, and information about region @idx. */
int rpage_source_region_count(const struct rpage_source *src);
int rpage_source_region_info(const struct rpage_source *src, unsigned idx,
			     struct rpage_region_info *info);
/* Returns the index of the region named @name, or -ENOENT. */
int rpage_source_find_region(const struct rpage_source *src,
			     const char *name);
/* The transport in use (never AUTO). */
enum rpage_transport rpage_source_transport(const struct rpage_source *src);

/* Closes the source. All attachments made from it must be freed first. */
void rpage_source_close(struct rpage_source *src);

/* ------------------------------------------------------------------ */
/* Destination side: a userfaultfd and the memory behind it            */
/* ------------------------------------------------------------------ */

/*
 * One mapping of the destination process: @size bytes at virtual address
 * @base (in the process that registered the userfaultfd) hold the bytes
 * at @offset of the source region. The same shape as one entry of
 * Firecracker's UFFD handshake.
 */
struct rpage_range {
	uint64_t base;
	uint64_t size;
	uint64_t offset;
	uint64_t page_size;
};

struct rpage_attach_opts {
	/* Background fill: bytes per bulk request (default 1 MiB) and requests
	 * in flight (default 4). 0 keeps the default. */
	uint32_t fill_chunk;
	uint32_t fill_depth;
	/* Non-zero: no background fill (faults only). */
	int no_fill;
};

struct rpage_attach;

/*
 * Starts serving the faults of @uffd (takes it: it is closed by
 * rpage_attach_free) for @n ranges (borrowed, copied) of region @region of
 * @src (borrowed; must outlive the attachment). The userfaultfd must
 * already have gone through UFFDIO_API and have the ranges registered for
 * missing faults, exactly as Firecracker hands it over. @opts may be NULL.
 * Starts a fault thread and a background fill thread.
 * -EINVAL: ranges overlap, overflow, are unaligned, mix page sizes, or
 * fall outside the region; -EBADF: @uffd is not a userfaultfd.
 */
int rpage_attach_start(struct rpage_source *src, unsigned region, int uffd,
		       const struct rpage_range *ranges, unsigned n,
		       const struct rpage_attach_opts *opts,
		       struct rpage_attach **out);

/*
 * A descriptor that becomes readable (an eventfd; borrowed) when the
 * attachment reaches a milestone: every page resident, or a failure.
 */
int rpage_attach_event_fd(const struct rpage_attach *att);

enum rpage_attach_state {
	RPAGE_ATTACH_RUNNING = 0,   /* pages still missing */
	RPAGE_ATTACH_COMPLETE = 1,  /* every page resident (or ballooned) */
	RPAGE_ATTACH_FAILED = 2,    /* transport or kernel error; see error */
	RPAGE_ATTACH_GONE = 3,      /* the process behind the uffd exited */
};

struct rpage_stats {
	uint32_t state;             /* enum rpage_attach_state */
	int32_t error;              /* -errno of the failure, or 0 */
	uint64_t page_size;
	uint64_t pages_total;
	uint64_t pages_resident;    /* placed with source data or zeros */
	uint64_t pages_by_fault;    /* placed by the fault path */
	uint64_t pages_by_fill;     /* placed by background fill */
	uint64_t pages_zeroed;      /* zero-filled after a balloon remove */
	uint64_t removes;           /* UFFD_EVENT_REMOVE events */
	uint64_t faults;            /* fault messages read */
	uint64_t faults_raced;      /* fault on a page already placed */
	uint64_t bytes_fault;       /* bytes fetched by the fault path */
	uint64_t bytes_fill;        /* bytes fetched by background fill */
	uint64_t blocked_ns;        /* sum of fault service times */
	uint64_t elapsed_ns;        /* since start (or until gone) */
	uint64_t resident_ns;       /* start to fully resident, 0 if not yet */
	/* fault service latency, nanoseconds */
	uint64_t lat_min_ns, lat_p50_ns, lat_p99_ns, lat_p999_ns, lat_max_ns;
	uint64_t lat_avg_ns;
};

/* A consistent-enough snapshot (counters are read without stopping). */
int rpage_attach_get_stats(struct rpage_attach *att, struct rpage_stats *st);

/* Prints @st for people (@name labels it), or as one JSON object. */
void rpage_stats_print(FILE *f, const char *name, const struct rpage_stats *st);
void rpage_stats_print_json(FILE *f, const char *name,
			    const struct rpage_stats *st);

/* Stops both threads and joins them. Pages not yet resident stay missing. */
int rpage_attach_stop(struct rpage_attach *att);
/* Stops if needed, closes the userfaultfd and frees. */
void rpage_attach_free(struct rpage_attach *att);

/* ------------------------------------------------------------------ */
/* Firecracker's UFFD handshake                                        */
/* ------------------------------------------------------------------ */

/*
 * Receives one handshake on the connected Unix stream socket @sock: a JSON
 * array of {"base_host_virt_addr","size","offset","page_size"} objects
 * (unknown fields such as "page_size_kib" are ignored; "page_size_kib"
 * alone is accepted) with one descriptor attached by SCM_RIGHTS.
 * On success stores a malloc'ed array in *ranges (caller frees), its
 * length in *n, and the received descriptor in *uffd (caller owns).
 * -EPROTO: malformed JSON or no descriptor; -EINVAL: ranges that overlap,
 * overflow or are unaligned; -ECONNRESET: the peer closed first.
 */
int rpage_fc_recv(int sock, struct rpage_range **ranges, unsigned *n,
		  int *uffd);

/* Sends the handshake (what Firecracker does). @uffd is borrowed. */
int rpage_fc_send(int sock, const struct rpage_range *ranges, unsigned n,
		  int uffd);

/*
 * Parses a handshake JSON text of @len bytes (exposed for tests and for
 * handlers that do their own socket I/O). Same returns as rpage_fc_recv.
 */
int rpage_fc_parse(const char *json, size_t len, struct rpage_range **ranges,
		   unsigned *n);

#ifdef __cplusplus
}
#endif
#endif /* RPAGE_RPAGE_H */
