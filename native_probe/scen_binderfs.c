/*
 * A binder device of the harness's own, made through binderfs.
 *
 * binderfs_add control=PATH name=NAME: open a binderfs mount's binder-control node and ask
 * it for a new binder device named NAME (BINDER_CTL_ADD: binder_ctl_ioctl ->
 * binderfs_binder_device_create). The device appears beside binder-control, as
 * DIR/NAME, with a context of its own. One "result" line, binderfs_add: errno (0; EEXIST
 * when the mount already has an entry of that name, e.g. a device an earlier run made on
 * a long-lived target), control, device_name and, when made, the major and minor the
 * kernel gave it. On EEXIST the kernel has already copied a major and minor out (before
 * its lookup found the name taken) and then freed that minor, so none is printed.
 * done.ok is true when the device was made or already existed.
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void scen_binderfs_add(void)
{
	struct binderfs_device dev;
	const char *control = arg_str("control", "/dev/binderfs/binder-control");
	const char *name = arg_str("name", "");
	char e[300];
	J j;
	int fd, rc, err;
	args_finish();
	if (!*name || strlen(name) > BINDERFS_MAX_NAME)
		usage_error("argument name: 1 to %d characters", BINDERFS_MAX_NAME);
	fd = open(control, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(e, sizeof(e), "open %s: %s", control, errno_name(errno));
		finish(0, e);
	}
	memset(&dev, 0, sizeof(dev));
	memcpy(dev.name, name, strlen(name));
	rc = ioctl(fd, BINDER_CTL_ADD, &dev);
	err = rc < 0 ? errno : 0;
	close(fd);
	jresult(&j, "binderfs_add", err);
	jstr(&j, "control", control);
	jstr(&j, "device_name", name);
	if (!err) {
		ju64(&j, "major", dev.major);
		ju64(&j, "minor", dev.minor);
	}
	jend(&j);
	if (err && err != EEXIST) {
		snprintf(e, sizeof(e), "BINDER_CTL_ADD %s on %s: %s", name, control, errno_name(err));
		finish(0, e);
	}
	finish(1, NULL);
}
