/* binder-probe <-> harness: what the probe prints and the harness matches, declared once.
 *
 * Every stdout line is one JSON object whose "ev" field is one of the EV_* names below
 * (README.md describes each line's fields). The numbers below are values the probe puts
 * into the driver's hands and the harness expects back.
 *
 * harness/evidence/contract.py reads this file, so Python matches the same names and numbers.
 * Keep its form: one `#define NAME "string"` or `#define NAME number` per line
 * (decimal or 0x hex, optional u suffix), with an optional trailing comment.
 */
#ifndef BINDER_PROBE_CONTRACT_H
#define BINDER_PROBE_CONTRACT_H

/* ---------------------------------------------------------------- events */
#define EV_DONE "done"                     /* the last line of every run */
#define EV_ERROR "error"                   /* a child process gave up */
#define EV_ROLES "roles"                   /* which pid is server/client (writer/reader) */
#define EV_MAP "map"                       /* one side's binder mapping */
#define EV_MAPS "maps"                     /* a /proc/self/maps line */
#define EV_TX "tx"                         /* a client call and what came back */
#define EV_RX "rx"                         /* a received transaction buffer */
#define EV_RESULT "result"                 /* one step of a protocol scenario */
#define EV_SRV_BR "srv_br"                 /* a BR the server saw */
#define EV_SRV_ERROR "srv_error"           /* a server-side failure */
#define EV_NODE_INFO "node_info"           /* BINDER_GET_NODE_DEBUG_INFO */
#define EV_TOUCH "touch"                   /* a byte read in the mapping (SIGBUS or not) */
#define EV_MMAP "mmap"                     /* an mmap step of mmap_flags */
#define EV_MPROTECT "mprotect"
#define EV_MUNMAP "munmap"
#define EV_SPAM_DETECTION "spam_detection" /* BINDER_ENABLE_ONEWAY_SPAM_DETECTION */
#define EV_SUMMARY "summary"               /* the totals of a flood or random run */
#define EV_SEED "seed"                     /* the random scenario's seed */
#define EV_STREAM "stream"                 /* one pipe or socket payload */
#define EV_PAGES "pages"                   /* the debugfs pages: line */
#define EV_DROP_CACHES "drop_caches"
#define EV_READY "ready"                   /* shrinker: waiting for the harness */
#define EV_RELEASED "released"             /* shrinker: the harness let it go */
#define EV_PERF "perf"                     /* round-trip timings */
#define EV_ASYNC_SPACE "async_space"       /* async_exact: free async space after each step */
#define EV_ASYNC_FILL "async_fill"         /* async_exact: how many oneway calls of a size fit */
#define EV_SPAWN_SUMMARY "spawn_summary"   /* loopers: BR_SPAWN_LOOPER counts */
#define EV_FD "fd"                         /* objects: a file descriptor as one side sees it */
#define EV_FD_AFTER_FREE "fd_after_free"   /* objects: a received fd still open after BC_FREE_BUFFER? */
#define EV_PTR_RX "ptr_rx"                 /* objects: a received BINDER_TYPE_PTR buffer */
#define EV_SENT "sent"                     /* objects: the objects the sender put in the transaction */
#define EV_SG_SENT "sg_sent"               /* objects: a scatter-gather transaction as sent */
#define EV_SENDER_PARENT_AFTER "sender_parent_after"  /* objects: the sender's FDA parent after the call */
#define EV_COMMANDS "commands"           /* before done: every ioctl, BC consumed and BR returned, by code, all processes */
#define EV_PROC_VIEW "proc_view"         /* patterns: what debugfs proc/PID lists (nodes, refs, buffers, transactions) */
#define EV_BUFFERS_LEFT "buffers_left"     /* valid_traffic: a side's allocated buffers (debugfs stats) at the end */

/* -------------------------------------------------------------- numbers */
#define DEATH_COOKIE_CLEARED 0x1111u       /* death notice requested, then cleared before death */
#define DEATH_COOKIE 0x2222u               /* death notice that BR_DEAD_BINDER must carry */
#define FREEZE_COOKIE 0x3333u              /* freeze: the freeze notification's cookie */
#define PING_TRANSACTION_CODE 0x5f504e47u  /* B_PACK_CHARS('_', 'P', 'N', 'G') */
#define OBJ_PTR_STRONG 0x5a0000a1u         /* objects: the BINDER_TYPE_BINDER node's ptr and cookie */
#define OBJ_COOKIE_STRONG 0xc0000a1u
#define OBJ_PTR_WEAK 0x5a0000b2u           /* objects: the BINDER_TYPE_WEAK_BINDER node's ptr and cookie */
#define OBJ_COOKIE_WEAK 0xc0000b2u
#define REFS_NODE_PTR 0xb1d0b1d0u          /* refcounts: the node the server hands out in a reply */
#define REFS_NODE_COOKIE 0xc00c1e00u
#define OBJ_UPDATE_CODE 0x55504454u        /* objects update_txn: the oneways' code, 'UPDT' */

#endif
