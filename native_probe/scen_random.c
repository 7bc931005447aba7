#include "probe.h"
void scen_random(void) { finish(0, "not implemented"); }
