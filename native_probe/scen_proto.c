#include "probe.h"
void scen_version(void) { finish(0, "not implemented"); }
void scen_null_args(void) { finish(0, "not implemented"); }
void scen_set_max_threads(void) { finish(0, "not implemented"); }
void scen_context_mgr_busy(void) { finish(0, "not implemented"); }
void scen_thread_exit(void) { finish(0, "not implemented"); }
void scen_read_empty_nonblock(void) { finish(0, "not implemented"); }
void scen_refcounts(void) { finish(0, "not implemented"); }
void scen_ping(void) { finish(0, "not implemented"); }
void scen_death_notification(void) { finish(0, "not implemented"); }
void scen_self_call_rejected(void) { finish(0, "not implemented"); }
void scen_invalid_handle(void) { finish(0, "not implemented"); }
void scen_bad_buffer_ptr(void) { finish(0, "not implemented"); }
void scen_freeze(void) { finish(0, "not implemented"); }
