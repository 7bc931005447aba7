#!/bin/sh
# PID 1 of every QEMU guest. The harness waits for the READY line, then drives
# the shell on the console. @MODULES@ is replaced by the load order at build time.
# The image links the applets at build time; install them only when it could not.
[ -e /bin/mount ] || /bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in @MODULES@; do
    # module parameters, when the image carries them (e.g. binder_linux devices=)
    insmod "/lib/modules/$m" $(cat "/etc/binder-harness/$m.params" 2>/dev/null) || echo "binder-harness: insmod $m failed"
done
# A binder with binderfs (CONFIG_ANDROID_BINDERFS, as on GKI kernels) makes no /dev/binder; it
# registers the filesystem "binder" instead. Do what Android's init does (init.rc): mount it at
# /dev/binderfs (binder-control plus one device per devices= name) and link /dev/binder to its
# "binder". The runner reads the kernel-log line to know the guest has binderfs
# (harness/running/devices.py GUEST_BINDERFS_LINE).
if [ ! -e /dev/binder ] && grep -qw binder /proc/filesystems; then
    mkdir -p /dev/binderfs
    if mount -t binder -o stats=global binder /dev/binderfs; then
        ln -s /dev/binderfs/binder /dev/binder
        echo "binder-harness: binderfs mounted at /dev/binderfs, /dev/binder -> /dev/binderfs/binder" > /dev/kmsg
    else
        echo "binder-harness: binderfs mount failed"
    fi
fi
[ -c /dev/binder ] || echo "binder-harness: no /dev/binder: binder_linux was not loaded and is not built into this kernel"
mount -t tracefs tracefs /sys/kernel/tracing
# What every traced case's arm script sets (harness/evidence/trace.py), set once here: resizing
# the ring buffer takes a case 0.04 s under TCG, and a restored guest starts from this boot.
echo @TRACE_BUFFER_KB@ > /sys/kernel/tracing/buffer_size_kb
echo 1 > /sys/kernel/tracing/options/record-tgid
mount -t debugfs debugfs /sys/kernel/debug
mkdir -p /mnt/host
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host /mnt/host || echo "binder-harness: 9p mount failed"
hostname binder-guest
# The boot log, for the run's dmesg.txt, without a console round trip.
dmesg > /mnt/host/.boot-dmesg.txt 2>/dev/null
# No prompt on the harness's console; a LAVA job asks for one with BH_PS1= on the kernel command line.
export PATH=/bin:/mnt/host/bin HOME=/tmp PS1="${BH_PS1:-}"
cd /tmp
stty -echo -onlcr 2>/dev/null
# The console shell prints READY itself, from $ENV, after its banner and
# job-control notice, so the first command's output is clean.
echo 'echo "binder-harness: READY $(uname -r) $(cat /proc/uptime)"; unset ENV' > /tmp/.ready
# The console shell is a child, not PID 1: PID 1 inherits orphans (busybox
# timeout leaves one behind) and a shell as PID 1 can misread their exit as its
# own. No controlling tty either, so no job control can stop the shell.
ENV=/tmp/.ready /bin/sh
echo "binder-harness: console shell exited"
poweroff -f
