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

/* Messages at or below @level go to stderr (the default is INFO, or
 * RPAGE_LOG=0..3 from the environment until this is called). */
void rpage_set_log_level(enum rpage_log_level level);

/* Returns the library version as a static string, e.g. "0.1". */
const char *rpage_version_string(void);

/* ------------------------------------------------------------------ */
/* Authentication and encryption                                        */
/* ------------------------------------------------------------------ */

/*
 * Every TCP connection between two rpage ends is TLS 1.3 with mutual
 * authentication once credentials are given, and the kernel's TLS record
 * layer carries it where the kernel has one (so sendfile keeps working).
 * Without credentials a connection is plain, and both ends refuse that
 * beyond loopback unless told `insecure` explicitly.
 *
 * Two kinds of credentials, one at a time:
 *  - a pre-shared key: @psk_file holds IDENTITY:HEXKEY lines as QEMU's
 *    keys.psk and GnuTLS's psktool write them. A server accepts any
 *    identity of the file; a client presents the first line.
 *  - X.509: @cert_file and @key_file (PEM) for this end, @ca_file (PEM) for
 *    the peer's. The peer's certificate must chain to the CA; a client
 *    also checks that it names the server (@peer_name, default: the host
 *    it connects to). A peer's identity is its certificate's Common Name.
 */
struct rpage_tls_opts {
	const char *psk_file;
	const char *cert_file;
	const char *key_file;
	const char *ca_file;
	/* Client: the name the server's certificate must carry (X.509). */
	const char *peer_name;
	/* Non-zero: keep the TLS record layer in user space even where the
	 * kernel offers its own (for comparison, or around a kernel bug). */
	int no_ktls;
};

struct rpage_tls;

/*
 * Loads and checks credentials (copies @o). Every problem is found here,
 * with a message: a missing or unreadable file, a malformed line or key, a
 * key shorter than 128 bits, a certificate that does not match its key,
 * a CA file without certificates, both kinds given at once.
 * Returns 0 and the handle in *out; -ENOENT, -EACCES, -EINVAL.
 */
int rpage_tls_new(const struct rpage_tls_opts *o, struct rpage_tls **out);
void rpage_tls_free(struct rpage_tls *tls);
/* The identity this end presents: the PSK file's first identity, or the
 * Common Name of its certificate. Borrowed; lives as long as @tls. */
const char *rpage_tls_identity(const struct rpage_tls *tls);
/*
 * Writes a fresh random 256-bit key for @identity (NULL: "rpage") to
 * @path, created with mode 0600 and never overwritten (-EEXIST), in the
 * keys.psk format. 0 or -errno.
 */
int rpage_tls_gen_psk(const char *path, const char *identity);

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

/*
 * Also listens for RDMA (rdma_cm) connections on @host:@port ("0": any
 * free port; clients learn the port over the TCP control session). Call it
 * after the last rpage_server_add_region and before rpage_server_start.
 * Each client's RDMA connections must name its live TCP control session;
 * its regions are registered REMOTE_READ only, for it alone, until its
 * control connection ends. Returns 0; -ENODEV: no RDMA device with an
 * ACTIVE port (or none with address @host): serve TCP only;
 * -EPROTONOSUPPORT: built without RDMA; -EADDRINUSE.
 */
int rpage_server_listen_rdma(struct rpage_server *srv, const char *host,
			     const char *port);
/* The RDMA port, or -ENOTCONN when not listening for RDMA. */
int rpage_server_rdma_port(const struct rpage_server *srv);

/* Starts the accept thread. Each client connection gets its own thread. */
int rpage_server_start(struct rpage_server *srv);

/* Stops accepting, ends every connection and joins all threads. */
int rpage_server_stop(struct rpage_server *srv);

/* Stops if needed and frees everything, including region descriptors. */
void rpage_server_free(struct rpage_server *srv);

/*
 * Authentication for every connection of @srv (borrows @tls: it must
 * outlive the server; NULL: none). Without credentials the server serves
 * plain TCP, and rpage_server_start refuses to start on an address that is
 * not loopback unless @insecure is non-zero. Call before
 * rpage_server_start. 0, -EBUSY (running).
 */
int rpage_server_set_tls(struct rpage_server *srv,
			 const struct rpage_tls *tls, int insecure);

/*
 * Authorization: lets @identity read region @region ("*": every region).
 * Once any rule exists, an identity reads only the regions named for it
 * (an identity with none is refused at HELLO, before any region table),
 * and sees them as its own region table. Without rules every
 * authenticated peer reads every region. Needs credentials (checked at
 * rpage_server_start). 0, -ENOENT (no such region), -EINVAL, -ENOMEM.
 */
int rpage_server_allow(struct rpage_server *srv, const char *identity,
		       const char *region);

/* What an unauthenticated peer can cost. 0 in a field keeps its
 * default; idle_ms 0 means no idle limit. */
struct rpage_server_limits {
	unsigned max_conns;          /* TCP connections open (1024) */
	unsigned max_conns_per_peer; /* from one IP address (64) */
	unsigned handshake_ms;       /* TCP accept to HELLO_ACK, the TLS
				      * handshake included, in all (10000) */
	unsigned idle_ms;            /* no request for this long after HELLO
				      * ends a connection (off) */
	unsigned max_rdma;           /* RDMA connections in all (1024) */
	unsigned max_rdma_per_session; /* RDMA connections per session (64) */
	/* A session whose control connection broke (no BYE) stays resumable
	 * this long: a client reconnecting names it and keeps its token
	 * (60000; data connections of it may join meanwhile). */
	unsigned resume_grace_ms;
};
/* Sets the limits; call before rpage_server_start. 0, -EBUSY, -EINVAL. */
int rpage_server_set_limits(struct rpage_server *srv,
			    const struct rpage_server_limits *l);

/* Server-wide counters (a snapshot; thread-safe). */
struct rpage_server_stats {
	uint64_t connections;      /* accepted since start */
	uint64_t active;           /* open now */
	uint64_t rejected;         /* closed for bad input */
	uint64_t page_requests;    /* urgent + bulk requests served */
	uint64_t bytes_sent;       /* page payload bytes */
	uint64_t completions;      /* clients that reported every page arrived */
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

struct rpage_connect_opts {
	enum rpage_transport transport; /* AUTO (0), TCP or RDMA */
	/* RDMA device to use (e.g. "mlx5_0", "rxe1"); NULL or "": the one
	 * rdma_cm routes to the server through. Naming a device also binds
	 * the connection's source address to that device's RoCE v2 IPv4
	 * GID. */
	const char *rdma_dev;
	/* Credentials (borrowed; must outlive the source); NULL: none. */
	const struct rpage_tls *tls;
	/* Non-zero: talk to a server beyond loopback without credentials. */
	int insecure;
};

/*
 * rpage_source_connect with options (@opts may be NULL: auto). AUTO uses
 * RDMA when this host has a device with an ACTIVE port, the server listens
 * for RDMA and a test connection succeeds; else TCP. It logs which one it
 * chose and why (rpage_source_transport() tells it too). RDMA fails with
 * -ENODEV (and a message) when there is no usable device here and
 * -EPROTONOSUPPORT when the server has no RDMA.
 * With opts->tls every connection is TLS 1.3 with mutual authentication;
 * without, a server that is not on loopback is refused (-EACCES) unless
 * opts->insecure. -EACCES also when the server could not be authenticated
 * or refused our credentials: a wrong key is never retried.
 */
int rpage_source_connect_opts(const char *host, const char *port,
			      const struct rpage_connect_opts *opts,
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
/* How the control connection is protected, in words, e.g. "TLS1.3
 * PSK 'node1' AES-128-GCM X25519, kernel TLS" or "plain TCP (no credentials)".
 * Copies at most @len bytes with the NUL. Returns 0. */
int rpage_source_security(const struct rpage_source *src, char *buf,
			  size_t len);

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
	/* Faults' pages in flight on the urgent channel at once (default 16,
	 * 4 with 2 MiB pages; at most 64). */
	uint32_t max_inflight;
	/* After a connection breaks, how long to keep reconnecting before the
	 * attachment fails (RPAGE_ATTACH_FAILED, -ETIMEDOUT), in ms: 0 is the
	 * default (180000), UINT32_MAX for ever. Faults wait meanwhile. */
	uint32_t resume_timeout_ms;
	/* The process behind the userfaultfd (0: unknown), as SO_PEERCRED
	 * tells it. A fault outside every range (memory the process mapped or
	 * moved there since) is answered with zeros only where /proc/PID/maps
	 * shows private anonymous memory, what the kernel gives such memory;
	 * anywhere else, or with no pid, the handler cannot know what that
	 * memory holds and ends the process's service with a message. */
	int pid;
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
	RPAGE_ATTACH_RECOVERING = 4,/* a connection broke: reconnecting (faults
				     * wait; it goes back to RUNNING, or ends
				     * FAILED at the deadline) */
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
	uint64_t reconnects;        /* connections brought back after a break */
	uint64_t recovering_ns;     /* time spent reconnecting */
	uint64_t faults_waited;     /* faults that waited for a reconnect */
	uint64_t recovering_for_ns; /* how long the recovery under way has
				     * lasted (0: none) */
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

/* ------------------------------------------------------------------ */
/* Live migration of a running workload                                */
/* ------------------------------------------------------------------ */

/*
 * The source process exports a region of its own memory (anonymous or
 * memfd-backed, page aligned) while its threads keep writing to it; the
 * destination process attaches a region of the same size and resumes the
 * workload there. Pre-copy rounds over TCP (several streams) with dirty
 * tracking by userfaultfd write-protect; a switchover that pauses the
 * workload through a callback; then post-copy through the fault handler
 * (rpage_attach_*) with background fill, served from the paused source's
 * memory. docs/live-migration.md describes the phases and the policy.
 */

enum rpage_live_mode {
	RPAGE_LIVE_HYBRID = 0,   /* pre-copy, then post-copy if needed */
	RPAGE_LIVE_PRECOPY = 1,  /* pre-copy only: may refuse to finish */
	RPAGE_LIVE_POSTCOPY = 2, /* switch at once, everything by post-copy */
};
/* Parses "hybrid", "precopy", "postcopy". Returns the value or -EINVAL. */
int rpage_live_mode_parse(const char *s);
const char *rpage_live_mode_name(enum rpage_live_mode m);

/* Why the source switched over (or gave up). */
enum rpage_live_reason {
	RPAGE_LIVE_NOT_YET = 0,
	RPAGE_LIVE_CONVERGED = 1,      /* remaining set fits the downtime target */
	RPAGE_LIVE_NOT_CONVERGING = 2, /* dirty rate >= send rate */
	RPAGE_LIVE_MAX_ROUNDS = 3,
	RPAGE_LIVE_EXPLICIT = 4,       /* rpage_live_source_switchover() */
	RPAGE_LIVE_POSTCOPY_ONLY = 5,  /* RPAGE_LIVE_POSTCOPY mode */
};
const char *rpage_live_reason_name(enum rpage_live_reason r);

struct rpage_live_opts {
	enum rpage_live_mode mode;
	unsigned streams;          /* pre-copy TCP streams, 1..16 (default 4) */
	uint32_t max_downtime_ms;  /* downtime target (default 300) */
	unsigned max_rounds;       /* pre-copy rounds at most (default 30) */
	int force_sync_wp;         /* non-zero: synchronous uffd-wp tracking
				    * even where the async mode exists */
	/* Pauses every thread that writes the region; returns 0 once they
	 * are stopped (they stay stopped: the workload now lives on the
	 * destination). Required unless mode is POSTCOPY and the caller has
	 * paused already. */
	int (*pause)(void *arg);
	/* Optional: restarts the paused workload when the switchover fails
	 * before the destination resumed (it refused, or was lost before the
	 * switchover message left): the workload then simply goes on here.
	 * Never called once the destination may have resumed. */
	int (*resume)(void *arg);
	void *arg;
	/* How post-copy pages may travel: AUTO (default; RDMA where this host
	 * has a usable device and the destination takes it, else TCP), TCP,
	 * or RDMA (the migration fails without a device). */
	enum rpage_transport postcopy_transport;
	/* Credentials (borrowed; must outlive the source; NULL: none). With
	 * them every connection is TLS 1.3: the destination proves it holds
	 * the key (or its certificate names the host migrated to), and the
	 * post-copy page server, started only at the switchover, serves that
	 * identity alone. Without them a destination beyond loopback is
	 * refused (-EACCES) unless @insecure. */
	const struct rpage_tls *tls;
	int insecure;
};

#define RPAGE_LIVE_MAX_ROUNDS 64
#define RPAGE_LIVE_HIST_BUCKETS 24

struct rpage_live_round_stats {
	uint64_t pages;    /* pages sent in the round */
	uint64_t bytes;
	uint64_t ns;       /* first byte to the destination's acknowledgement */
	uint64_t dirtied;  /* pages found written during the round */
};

struct rpage_live_stats {
	uint32_t mode;           /* enum rpage_live_mode */
	uint32_t reason;         /* enum rpage_live_reason */
	int32_t error;           /* -errno of a failure, or 0 */
	uint32_t tracking;       /* 1: uffd-wp async + PAGEMAP_SCAN; 2: sync */
	uint64_t page_size, pages_total;
	uint32_t rounds;         /* pre-copy rounds done */
	struct rpage_live_round_stats round[RPAGE_LIVE_MAX_ROUNDS];
	uint64_t send_rate_Bps;  /* last measured pre-copy rate */
	uint64_t collect_ns;     /* time spent collecting dirty pages */
	uint64_t final_pages;    /* sent while paused (stop-and-copy) */
	uint64_t postcopy_pages; /* left to post-copy (dropped at the dest) */
	uint32_t postcopy_port;  /* the source's page server (TCP port) */
	uint32_t resumed_here;   /* source: the switchover failed and
				  * opts.resume restarted the workload here */
	uint32_t recovering;     /* a connection broke: waiting for the other
				  * side to come back (source: in post-copy,
				  * the page server keeps serving) */
	uint32_t reconnects;     /* pre-copy: times the connections broke and
				  * came back (the round was sent again) */
	uint64_t precopy_ns, downtime_ns, postcopy_ns, total_ns;
	/* destination only: the post-copy fault handler's figures */
	struct rpage_stats post;
	/* post-copy faults by service time: bucket 0 counts < 2 us, bucket i
	 * (i >= 1) counts [2^i, 2^(i+1)) us, the last one everything above */
	uint64_t fault_hist[RPAGE_LIVE_HIST_BUCKETS];
	char why[256];           /* the decision, or the error, in words */
};

/* ---- source ---- */
struct rpage_live_source;

/*
 * Prepares to migrate @length bytes at @mem (borrowed: must stay mapped
 * until rpage_live_source_free; anonymous or memfd-backed; page aligned,
 * @page_size 4096) with @opts (copied). Returns 0 and a handle in *out.
 */
int rpage_live_source_new(void *mem, uint64_t length, uint32_t page_size,
			  const struct rpage_live_opts *opts,
			  struct rpage_live_source **out);
/*
 * Connects to a destination listening at @host:@port and migrates:
 * pre-copy rounds, switchover (calls opts->pause), then serves post-copy
 * from @mem until the destination reports every page resident. Blocks.
 * Returns 0 when the workload now lives on the destination.
 * -ETIMEDOUT: RPAGE_LIVE_PRECOPY did not converge (why says so; the
 *  workload was never paused and tracking is stopped);
 * -ECONNRESET etc.: the destination was lost (before the switchover the
 *  workload keeps running here, memory untouched; after it, the workload
 *  stays paused here). rpage_live_source_get_stats tells which.
 */
int rpage_live_source_migrate(struct rpage_live_source *s, const char *host,
			      const char *port);
/* Asks a running migrate to switch over now (thread-safe). Returns 0. */
int rpage_live_source_switchover(struct rpage_live_source *s);
int rpage_live_source_get_stats(struct rpage_live_source *s,
				struct rpage_live_stats *st);
void rpage_live_source_free(struct rpage_live_source *s);

/* ---- destination ---- */
struct rpage_live_dest;

/*
 * Prepares to receive @length bytes into @mem (borrowed; a private
 * anonymous mapping that nothing touches until rpage_live_dest_run
 * returns 0). @opts (may be NULL) tunes the post-copy background fill.
 */
int rpage_live_dest_new(void *mem, uint64_t length, uint32_t page_size,
			const struct rpage_attach_opts *opts,
			struct rpage_live_dest **out);
/* Binds and listens (port "0" picks one; rpage_live_dest_port tells). */
int rpage_live_dest_listen(struct rpage_live_dest *d, const char *host,
			   const char *port);
/* How post-copy faults reach the source: AUTO (default: RDMA when both
 * ends have a device, else TCP), TCP or RDMA. Call before
 * rpage_live_dest_run. 0 or -EINVAL. */
int rpage_live_dest_set_transport(struct rpage_live_dest *d,
				  enum rpage_transport t);
/*
 * Credentials for every connection of the migration (borrows @tls: it
 * must outlive @d; NULL: none). With them the destination takes only a
 * source that authenticates; without them rpage_live_dest_run refuses to
 * wait on an address that is not loopback (-EACCES) unless @insecure.
 * Call before rpage_live_dest_run. 0.
 */
int rpage_live_dest_set_tls(struct rpage_live_dest *d,
			    const struct rpage_tls *tls, int insecure);
int rpage_live_dest_port(const struct rpage_live_dest *d);
/*
 * Accepts one source and receives pre-copy until the switchover. Returns
 * 0 when the workload may resume here (pages still at the source fault
 * and are fetched). -ECONNABORTED: the source gave up (why says why);
 * -ECONNRESET: the source was lost before the switchover; -ETIMEDOUT: no
 * source (that could authenticate) arrived. Connections that fail their
 * handshake, are idle or come before the control connection are closed
 * and logged; they do not hold the destination up.
 */
int rpage_live_dest_run(struct rpage_live_dest *d);
/*
 * Waits up to @timeout_ms (-1: forever) for post-copy to end and tells
 * the source. 0: every page resident; -ETIMEDOUT; or the failure (the
 * stats say how many pages are resident).
 */
int rpage_live_dest_wait(struct rpage_live_dest *d, int timeout_ms);
int rpage_live_dest_get_stats(struct rpage_live_dest *d,
			      struct rpage_live_stats *st);
void rpage_live_dest_free(struct rpage_live_dest *d);

#ifdef __cplusplus
}
#endif
#endif /* RPAGE_RPAGE_H */
