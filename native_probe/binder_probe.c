/* binder-probe: entry point.  Usage: binder-probe SCENARIO [key=value ...]
 * Every scenario prints JSON lines on stdout and ends with {"ev":"done"}.
 * See README.md for the full contract.
 */
#include "probe.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	void (*fn)(void);
} scenarios[] = {
	{"sync", scen_sync},
	{"stream", scen_stream},
	{"ipc", scen_ipc},
	{"lazy", scen_lazy},
	{"clamp", scen_clamp},
	{"shrinker", scen_shrinker},
	{"mmap_flags", scen_mmap_flags},
	{"async_flood", scen_async_flood},
	{"free_reuse", scen_free_reuse},
	{"spam", scen_spam},
	{"munmap_dead", scen_munmap_dead},
	{"version", scen_version},
	{"null_args", scen_null_args},
	{"set_max_threads", scen_set_max_threads},
	{"context_mgr_busy", scen_context_mgr_busy},
	{"thread_exit", scen_thread_exit},
	{"read_empty_nonblock", scen_read_empty_nonblock},
	{"refcounts", scen_refcounts},
	{"ping", scen_ping},
	{"resident", scen_resident},
	{"ping_cm", scen_ping_cm},
	{"binderfs_add", scen_binderfs_add},
	{"death_notification", scen_death_notification},
	{"self_call_rejected", scen_self_call_rejected},
	{"invalid_handle", scen_invalid_handle},
	{"bad_buffer_ptr", scen_bad_buffer_ptr},
	{"freeze", scen_freeze},
	{"random", scen_random},
	{"valid_traffic", scen_valid_traffic},
	{"refs_after_exit", scen_refs_after_exit},
	{"perf", scen_perf},
	{"objects", scen_objects},
	{"async_exact", scen_async_exact},
	{"loopers", scen_loopers},
	{"poll_work", scen_poll_work},
	{"epoll_looper", scen_epoll_looper},
	{"cm_self", scen_cm_self},
};

int main(int argc, char **argv)
{
	size_t i;
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: binder-probe SCENARIO [key=value ...]\nscenarios:");
		for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
			fprintf(stderr, " %s", scenarios[i].name);
		fprintf(stderr, "\n");
		return 2;
	}
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (!strcmp(argv[1], scenarios[i].name))
			break;
	if (i == sizeof(scenarios) / sizeof(scenarios[0]))
		usage_error("unknown scenario '%s'", argv[1]);
	g_scenario = scenarios[i].name;
	args_init(argc - 2, argv + 2);
	g_binder_dev = arg_str("device", "/dev/binder");
	g_binder_logs = arg_str("logs", BINDER_LOGS_DEFAULT);
	g_timeout_s = (unsigned)arg_u64("timeout", 20);
	if (g_timeout_s == 0)
		usage_error("argument timeout must be > 0");
	signal(SIGPIPE, SIG_IGN);
	arm_timeout();
	scenarios[i].fn();   /* each scenario ends with finish() */
	finish(0, "scenario returned without a verdict");
}
