#include "probe.h"
void scen_mmap_flags(void) { finish(0, "not implemented"); }
void scen_async_flood(void) { finish(0, "not implemented"); }
void scen_free_reuse(void) { finish(0, "not implemented"); }
void scen_spam(void) { finish(0, "not implemented"); }
void scen_munmap_dead(void) { finish(0, "not implemented"); }
