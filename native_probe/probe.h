/* binder-probe: shared declarations.
 *
 * Plain C11 + Linux syscalls.  The binder UAPI comes from the toolchain's
 * <linux/android/binder.h> when it has one, otherwise from binder_uapi.h
 * (protocol version 8 layout: 64-bit sizes and pointers on every ABI).
 */
#ifndef BINDER_PROBE_H
#define BINDER_PROBE_H

#define _GNU_SOURCE 1

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/ioctl.h>

#if defined(__has_include) && !defined(PROBE_FORCE_FALLBACK_UAPI)
#if __has_include(<linux/android/binder.h>) && __has_include(<linux/android/binderfs.h>)
#include <linux/android/binder.h>
#include <linux/android/binderfs.h>
#define PROBE_UAPI_SYSTEM 1
#endif
#endif
#ifndef PROBE_UAPI_SYSTEM
#include "binder_uapi.h"
#endif

#ifdef BINDER_IPC_32BIT
#error "binder-probe speaks protocol version 8 only; BINDER_IPC_32BIT must not be defined"
#endif

/* The protocol-8 layout is the same on 32- and 64-bit user space. */
_Static_assert(sizeof(binder_size_t) == 8, "binder_size_t must be 64-bit");
_Static_assert(sizeof(binder_uintptr_t) == 8, "binder_uintptr_t must be 64-bit");
_Static_assert(sizeof(struct binder_transaction_data) == 64, "binder_transaction_data layout");
_Static_assert(sizeof(struct binder_write_read) == 48, "binder_write_read layout");
_Static_assert(sizeof(struct flat_binder_object) == 24, "flat_binder_object layout");
_Static_assert(sizeof(struct binder_extended_error) == 12, "binder_extended_error layout");
_Static_assert(sizeof(struct binder_fd_object) == 24, "binder_fd_object layout");
_Static_assert(sizeof(struct binder_buffer_object) == 40, "binder_buffer_object layout");
_Static_assert(sizeof(struct binder_fd_array_object) == 32, "binder_fd_array_object layout");
_Static_assert(sizeof(struct binderfs_device) == 264, "binderfs_device layout");

#include "contract.h"

/* seen.c: every ioctl of the probe, in every process, is recorded (with the BCs the kernel
 * consumed and the BRs it returned through BINDER_WRITE_READ); finish() prints them. */
int probe_ioctl(int fd, unsigned long req, void *arg);
void print_commands_seen(void);
#define ioctl(fd, req, arg) probe_ioctl((fd), (unsigned long)(req), (void *)(uintptr_t)(arg))

#ifndef PING_TRANSACTION
#define PING_TRANSACTION PING_TRANSACTION_CODE
/* Returns newer than the system header (Debian bookworm's is 6.1): a oneway queued to a
 * frozen process is answered with this instead of BR_TRANSACTION_COMPLETE since Linux 6.4
 * ("binder: return pending info for frozen async txns", binder_transaction). */
#define PROBE_BR_TRANSACTION_PENDING_FROZEN _IO('r', 20)
#endif
#ifndef BC_REQUEST_FREEZE_NOTIFICATION
/* Freeze notifications, newer than bookworm's 6.1 header (Linux 6.12's binder.h has them;
 * binder_request_freeze_notification, binder_freeze_notification_done, binder_clear_freeze_notification). */
struct binder_frozen_state_info {
	binder_uintptr_t cookie;
	__u32 is_frozen;
	__u32 reserved;
};
#define BR_FROZEN_BINDER _IOR('r', 21, struct binder_frozen_state_info)
#define BR_CLEAR_FREEZE_NOTIFICATION_DONE _IOR('r', 22, binder_uintptr_t)
#define BC_REQUEST_FREEZE_NOTIFICATION _IOW('c', 19, struct binder_handle_cookie)
#define BC_CLEAR_FREEZE_NOTIFICATION _IOW('c', 20, struct binder_handle_cookie)
#define BC_FREEZE_NOTIFICATION_DONE _IOW('c', 21, binder_uintptr_t)
#endif
_Static_assert(sizeof(struct binder_frozen_state_info) == 16, "binder_frozen_state_info layout");
_Static_assert(PING_TRANSACTION == B_PACK_CHARS('_', 'P', 'N', 'G'), "contract.h PING_TRANSACTION_CODE");

/* ------------------------------------------------------------------ util.c */

/* One JSON object per line, written with a single write(2) to stdout. */
typedef struct {
	char b[16384];
	size_t n;
	int first;
} J;

void jbegin(J *j, const char *ev);
void jstr(J *j, const char *k, const char *v);        /* v == NULL -> null */
void ju64(J *j, const char *k, uint64_t v);
void ji64(J *j, const char *k, int64_t v);
void jbool(J *j, const char *k, int v);
void jnull(J *j, const char *k);
void jraw(J *j, const char *k, const char *raw);      /* raw JSON value */
void jerrno(J *j, int err);                           /* "errno":N,"errno_name":"E.." */
void jend(J *j);                                      /* append "}\n" and write */
/* Append a JSON string literal (with quotes, escaped) to a plain buffer. */
size_t json_quote(char *dst, size_t cap, const char *s);

const char *errno_name(int e);

/* Arguments: key=value, consumed by the scenario; leftovers are errors. */
void args_init(int argc, char **argv);
const char *arg_str(const char *key, const char *def);
uint64_t arg_u64(const char *key, uint64_t def);
/* Comma separated list of unsigned numbers; returns count. */
int arg_list(const char *key, const char *def, uint64_t *out, int max);
void args_finish(void);                               /* exit 2 on unknown keys */
void usage_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Global run state used by the timeout handler and the final line. */
extern const char *g_scenario;
extern const char *g_binder_dev; /* device=PATH (default /dev/binder) */
/* The one place the probe names binder's log files: debugfs binder/ by default; logs=PATH points
 * it elsewhere (binderfs binder_logs/, where a binderfs mount keeps stats, state, proc/PID). */
#define BINDER_LOGS_DEFAULT "/sys/kernel/debug/binder"
extern const char *g_binder_logs; /* logs=PATH (default BINDER_LOGS_DEFAULT) */
/* g_binder_logs + "/" + the printf-formatted file name (e.g. "proc/%d") into buf */
void binder_log_path(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
extern volatile const char *g_phase;
extern unsigned g_timeout_s;
extern pid_t g_child;            /* child to kill on timeout (parent only) */
extern int g_is_child;
void set_phase(const char *p);
/* The seeded xorshift64* stream the stress scenarios draw from: the same seed (and salt, one
 * per scenario) gives the same stream, so a printed seed replays a run. */
void rng_seed(uint64_t seed, uint64_t salt);
uint64_t rnd(void);
uint32_t rn(uint32_t n); /* uniform-ish in [0, n); 0 when n is 0 */
/* A stress scenario's start: reads seed=, duration_ms= and max_ops=, seeds the stream with
 * `salt`, stretches the time limit to the duration plus `slack_ms`, arms it, prints the seed. */
void stress_begin(uint64_t *seed, uint64_t *duration_ms, uint64_t *max_ops, uint64_t salt, unsigned slack_ms);
void arm_timeout(void);          /* installs SIGALRM handler + alarm(g_timeout_s) */
pid_t fork_child(void);          /* fork with output flushed; the child arms its own timeout,
                                    the parent kills it on timeout; returns fork()'s pid */
/* Print the final {"ev":"done"} line and exit 0/1. */
void finish(int ok, const char *error) __attribute__((noreturn));
/* Child processes: print {"ev":"error"} and _exit(code). */
void child_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

uint64_t now_ms(void);
void sleep_ms(unsigned ms);
/* One byte between a pair's processes, a happens-after instead of a sleep: tell_peer writes it,
 * await_peer waits for it at most timeout_ms (1: heard, 0: timed out or the peer is gone). */
void tell_peer(int fd);
int await_peer(int fd, int timeout_ms);
/* The state letter of /proc/PID/task/TID/stat (R, S, D, T, ...): 0 when the line has none,
 * -errno when the file cannot be opened. */
int task_state(pid_t pid, pid_t tid);

/* Payload pattern: byte i = (seq*131 + i*7) & 0xff. */
void pattern_fill(uint8_t *p, size_t n, uint64_t seq);
/* Returns -1 when every byte matches, else the first bad index. */
int64_t pattern_check(const uint8_t *p, size_t n, uint64_t seq);

/* The /proc/self/maps line whose range starts at addr ("" if none). */
void maps_line_for(uintptr_t addr, char *out, size_t cap);
/* Read one byte at p; returns 0 when readable, else the signal number. */
int touch_byte(const volatile uint8_t *p);
const char *signal_name(int sig);

/* ------------------------------------------------------------------ bdr.c */

typedef struct {
	uint32_t cmd;
	union {
		struct binder_transaction_data tr;
		struct binder_transaction_data_secctx trs;
		struct binder_ptr_cookie pc;
		binder_uintptr_t cookie;
		int32_t i32;
		uint8_t raw[128];
	} u;
} Br;

typedef struct {
	int fd;
	uint8_t *map;
	size_t map_size;
	uint8_t rbuf[2048];
	size_t rlen, rpos;
	uint64_t reads;
	uint64_t reads_without_noop;   /* read buffers that did not start with BR_NOOP */
} Bd;

const char *br_name(uint32_t cmd);
const char *bc_name(uint32_t cmd);

/* open /dev/binder (O_RDWR|O_CLOEXEC|extra flags); returns 0 or -errno. */
int bd_open(Bd *b, int extra_flags);
/* mmap the area PROT_READ, MAP_PRIVATE; returns 0 or -errno. */
int bd_mmap(Bd *b, size_t size);
void open_or_die(Bd *b, int flags, size_t map); /* bd_open (+ bd_mmap when map) or finish(0) */
void bd_close(Bd *b);
/* Print {"ev":"map",...} for this process. */
void bd_print_map(Bd *b, const char *role, size_t requested);
/* Write-only BINDER_WRITE_READ.  Returns 0 or -errno; *consumed gets write_consumed. */
int bd_write(Bd *b, const void *cmds, size_t len, size_t *consumed);
/* Next BR (BR_NOOP skipped).  1 = got one, 0 = timeout, -errno = ioctl error. */
int bd_next(Bd *b, Br *out, int timeout_ms);
/* True when parsed BRs are still queued. */
int bd_pending(Bd *b);
int bd_fill(Bd *b);            /* one nonblocking read; 1 got data, 0 EAGAIN, -errno */
int bd_cmd0(Bd *b, uint32_t cmd);
int bd_cmd_u32(Bd *b, uint32_t cmd, uint32_t v);
int bd_cmd_ptr(Bd *b, uint32_t cmd, binder_uintptr_t v);
int bd_cmd_pc(Bd *b, uint32_t cmd, binder_uintptr_t ptr, binder_uintptr_t cookie);
int bd_cmd_hc(Bd *b, uint32_t cmd, uint32_t handle, binder_uintptr_t cookie);
int bd_free(Bd *b, binder_uintptr_t buf);
/* The node owner's part: answer BR_INCREFS/BR_ACQUIRE with BC_INCREFS_DONE/BC_ACQUIRE_DONE.
 * 1 when `br` was one of them (and was answered), else 0. */
int bd_ack_refcount(Bd *b, const Br *br);
/* Read what is queued until a read finds nothing for quiet_ms, answering refcount BRs
 * (bd_ack_refcount); each BR's cmd goes to brs[n..CALL_MAX_BR). Returns the new count. */
int bd_read_quiet(Bd *b, int quiet_ms, uint32_t *brs, int n);
/* Send BC_TRANSACTION / BC_REPLY (write only). */
int bd_send(Bd *b, uint32_t bc, uint32_t handle, uint32_t code, uint32_t flags,
	    binder_uintptr_t data, uint64_t size, binder_uintptr_t offs, uint64_t offs_size);
int bd_get_ext_err(Bd *b, struct binder_extended_error *ee);
int bd_set_context_mgr(Bd *b, int retry_ms);
/* BINDER_SET_CONTEXT_MGR_EXT with these flat_binder_object flags (e.g. FLAT_BINDER_FLAG_ACCEPTS_FDS). */
int bd_set_context_mgr_ext(Bd *b, int retry_ms, uint32_t flags);
void jext(J *j, const char *k, const struct binder_extended_error *ee, int have);
void jbrs(J *j, const char *k, const uint32_t *brs, int n);

/* A client call: send, then collect BRs until a terminal one. */
#define CALL_MAX_BR 16
typedef struct {
	const char *status;       /* ok|failed_reply|dead_reply|frozen_reply|error|timeout */
	uint32_t brs[CALL_MAX_BR];
	int nbr;
	int have_reply;
	struct binder_transaction_data reply;
	int spam_suspect;
	int write_err;            /* -errno of the write ioctl, 0 ok */
	size_t write_consumed;
	struct binder_extended_error ee;
	int have_ee;
	uint64_t elapsed_us;
	Br extra[4];              /* non-call BRs seen meanwhile (e.g. BR_DEAD_BINDER) */
	int nextra;
} CallRes;

int bd_call(Bd *b, uint32_t handle, uint32_t code, uint32_t flags,
	    binder_uintptr_t data, uint64_t size, binder_uintptr_t offs, uint64_t offs_size,
	    CallRes *r, int timeout_ms);
/* The same with BC_TRANSACTION_SG: `buffers_size` bytes of scatter-gather buffers. */
int bd_call_sg(Bd *b, uint32_t handle, uint32_t code, uint32_t flags,
	       binder_uintptr_t data, uint64_t size, binder_uintptr_t offs, uint64_t offs_size,
	       uint64_t buffers_size, CallRes *r, int timeout_ms);
/* The extra BRs of a call (BR_INCREFS, ...) as [{"br":..,"ptr":..,"cookie":..}]. */
void jcall_extra(J *j, const char *k, const CallRes *r);
/* The objects a transaction buffer holds, as a JSON array under key k: for each offset,
 * {"off","type",...} with the fields of its type; PTR buffers also get "buf_off", their
 * offset from `base` (the start of the transaction buffer). */
void jobjects(J *j, const char *k, const uint8_t *data, uint64_t data_size,
	      const binder_size_t *offs, uint64_t offs_size, uint64_t base);
const char *binder_type_name(uint32_t type);
/* A number from the "proc PID" section of debugfs binder/stats: the line "KEY N"
 * (e.g. "free async space"); 0, or -ENOENT when there is no such line. */
int bd_debugfs_stats_value(pid_t pid, const char *key, long *out);
/* Common tx line: ev=tx, seq, n, size, status, br, ext_err (+ write errno). */
void jcall(J *j, const CallRes *r);

/* Describe a received transaction buffer (rx line body). */
void jrx(J *j, Bd *b, const struct binder_transaction_data *tr, uint64_t seq,
	 uint64_t expect_size);

/* ----------------------------------------------------------- pair (bdr.c) */

struct Pair;
typedef int (*on_tx_fn)(struct Pair *p, Bd *b, const struct binder_transaction_data *tr);
typedef void (*hook_fn)(struct Pair *p, Bd *b);
typedef int (*client_fn)(struct Pair *p, Bd *b);
typedef void (*br_fn)(struct Pair *p, Bd *b, const Br *br);

typedef struct Pair {
	size_t server_map, client_map;
	int server_free;          /* BC_FREE_BUFFER every received buffer */
	int server_print_rx;      /* print rx lines */
	int server_reply_payload; /* reply with a payload of the request's size */
	int server_print_br;      /* print srv_br for every non-transaction BR */
	int server_quiet;         /* never print srv_br / srv_error */
	const uint64_t *sizes;    /* expected sizes by seq (for rx.size) */
	int nsizes;
	uint32_t server_ctx_flags; /* nonzero: BINDER_SET_CONTEXT_MGR_EXT with these flags */
	on_tx_fn on_tx;           /* optional override of the default handler */
	hook_fn server_setup;     /* after context manager, before ready */
	hook_fn server_post;      /* after traffic, before exit */
	br_fn on_br;              /* server: after each non-transaction BR */
	client_fn client;         /* returns 0 ok, else sets err */
	pid_t server_pid, client_pid;
	int ctl_fd;               /* client: write end of the control pipe */
	int server_killed;        /* client killed the server on purpose */
	uint64_t rx_count;
	void *user;
	char err[256];
} Pair;

int default_on_tx(Pair *p, Bd *b, const struct binder_transaction_data *tr);
/* Print a {"ev":"result"} line header: name + errno. Caller adds fields and jend(). */
void jresult(J *j, const char *name, int err);
/* Fork, run server (child) and client (parent); prints done and exits. */
void run_pair(Pair *p) __attribute__((noreturn));
/* Stop the server now: close control pipe (graceful) or SIGKILL it. */
void pair_stop_server(Pair *p, int kill_it);

/* ------------------------------------------------------------ scenarios */
void scen_sync(void);
void scen_stream(void);
void scen_ipc(void);
void scen_lazy(void);
void scen_clamp(void);
void scen_shrinker(void);
void scen_mmap_flags(void);
void scen_async_flood(void);
void scen_free_reuse(void);
void scen_spam(void);
void scen_munmap_dead(void);
void scen_version(void);
void scen_null_args(void);
void scen_set_max_threads(void);
void scen_context_mgr_busy(void);
void scen_thread_exit(void);
void scen_read_empty_nonblock(void);
void scen_refcounts(void);
void scen_ping(void);
void scen_resident(void);
void scen_ping_cm(void);
void scen_binderfs_add(void);
void scen_death_notification(void);
void scen_self_call_rejected(void);
void scen_invalid_handle(void);
void scen_bad_buffer_ptr(void);
void scen_freeze(void);
void scen_random(void);
void scen_valid_traffic(void);
void scen_refs_after_exit(void);
void scen_perf(void);
void scen_objects(void);
void scen_async_exact(void);
void scen_loopers(void);
void scen_poll_work(void);
void scen_epoll_looper(void);
void scen_cm_self(void);
/* scen_patterns.c: {"ev":"proc_view"} of binder's debugfs proc/PID file at a checkpoint */
void print_proc_view(const char *at, const char *who, pid_t pid);

#endif
