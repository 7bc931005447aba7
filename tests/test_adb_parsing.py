"""adb without a device: command construction and parsing of adb's documented output.

The texts below follow the formats of the platform adb tool: `adb devices -l`
(the serial padded to a column, the state, then key:value qualifiers; "no
permissions (...); see [URL]" as the state of a USB device without udev rules),
`getprop` (`[name]: [value]`), `adb root`, and `adb shell` output with and
without the shell_v2 protocol (legacy adbd: a pty, CRLF line ends, and adb's
own exit status 0 whatever the command did). None of them needs a device.
"""
from __future__ import annotations

import os
import socket
import subprocess

import pytest

from harness.errors import ConfigError, TargetUnavailable
from harness.targets import TargetOptions, check_options
from harness.targets.spec import TargetSpec
from harness.targets.adb import (AdbTarget, abi_info, adb_argv, choose_device, device_command, parse_devices,
                                 parse_getprop, root_state, shell_result, split_status)
from tests.helpers import cli

DEVICES_L = """\
* daemon not running; starting now at tcp:5037
* daemon started successfully
List of devices attached
emulator-5554          device product:sdk_gphone64_x86_64 model:sdk_gphone64_x86_64 device:emu64xa transport_id:1
0B261JEC215264         unauthorized usb:1-4 transport_id:2
192.168.1.20:5555      offline transport_id:3
863276c1               no permissions (missing udev rules? user is in the plugdev group); see [http://developer.android.com/tools/device.html] usb:1-2 transport_id:4
R58M12ABCDE            recovery usb:1-3 product:beyond1lteeea model:SM_G973F device:beyond1 transport_id:5

"""

DEVICES_SHORT = "List of devices attached\nemulator-5554\tdevice\nemulator-5556\toffline\n\n"
DEVICES_2012 = "List of devices attached\n016B75D60A00600D\tusb:2-5\tdevice\n"
DEVICES_NONE = "List of devices attached\n\n"


def test_devices_long_listing():
    devs = parse_devices(DEVICES_L)
    assert [(d.serial, d.state) for d in devs] == [
        ("emulator-5554", "device"), ("0B261JEC215264", "unauthorized"), ("192.168.1.20:5555", "offline"),
        ("863276c1", "no permissions"), ("R58M12ABCDE", "recovery")]
    assert devs[0].qualifiers == {"product": "sdk_gphone64_x86_64", "model": "sdk_gphone64_x86_64",
                                  "device": "emu64xa", "transport_id": "1"}
    assert "udev rules" in devs[3].detail and devs[3].qualifiers["transport_id"] == "4"


def test_devices_short_and_old_formats():
    assert [(d.serial, d.state) for d in parse_devices(DEVICES_SHORT)] == [("emulator-5554", "device"), ("emulator-5556", "offline")]
    old = parse_devices(DEVICES_2012)
    assert (old[0].serial, old[0].state, old[0].qualifiers) == ("016B75D60A00600D", "device", {"usb": "2-5"})
    assert parse_devices(DEVICES_NONE) == []
    assert parse_devices(DEVICES_SHORT.replace("\n", "\r\n"))[0].state == "device"


def test_choose_device():
    devs = parse_devices(DEVICES_L)
    assert choose_device(devs, "emulator-5554", "adb:emulator-5554").serial == "emulator-5554"
    assert choose_device(parse_devices(DEVICES_SHORT)[:1], None, "adb").serial == "emulator-5554"
    cases = [
        (DEVICES_NONE, None, "adb: no device attached"),
        (DEVICES_L, None, "adb: 5 devices attached"),
        (DEVICES_L, "0B261JEC215264", "adb:0B261JEC215264: device unauthorized"),
        (DEVICES_L, "192.168.1.20:5555", "adb:192.168.1.20:5555: device offline"),
        (DEVICES_L, "863276c1", "adb:863276c1: no permission to open the USB device"),
        (DEVICES_L, "R58M12ABCDE", "state 'recovery'"),
        (DEVICES_L, "nope", "no device with serial nope"),
    ]
    for text, serial, message in cases:
        with pytest.raises(TargetUnavailable) as err:
            choose_device(parse_devices(text), serial, f"adb:{serial}" if serial else "adb")
        assert message in str(err.value)
        assert "\n" not in str(err.value)
    with pytest.raises(TargetUnavailable, match="pick one with --target adb:SERIAL"):
        choose_device(parse_devices(DEVICES_SHORT), None, "adb")


def test_abi_mapping():
    assert abi_info("arm64-v8a") == ("arm64", "arm64")
    assert abi_info("armeabi-v7a\r\n") == ("arm", "armhf")
    assert abi_info("x86_64") == ("x86_64", "x86_64")
    assert abi_info("x86") == ("i386", "i386")
    with pytest.raises(TargetUnavailable, match="riscv64"):
        abi_info("riscv64")


def test_getprop_listing():
    text = ("[dalvik.vm.isa.arm64.variant]: [generic]\r\n[ro.product.cpu.abi]: [arm64-v8a]\r\n"
            "[ro.product.cpu.abilist]: [arm64-v8a,armeabi-v7a,armeabi]\r\n[ro.build.type]: [userdebug]\r\n[empty]: []\r\n")
    props = parse_getprop(text)
    assert props["ro.product.cpu.abi"] == "arm64-v8a"
    assert props["ro.product.cpu.abilist"] == "arm64-v8a,armeabi-v7a,armeabi"
    assert props["empty"] == ""


def test_command_construction():
    assert adb_argv("/usr/bin/adb", "emulator-5554", "shell", "x") == ["/usr/bin/adb", "-s", "emulator-5554", "shell", "x"]
    assert adb_argv("adb", None, "devices", "-l") == ["adb", "devices", "-l"]
    cmd = "echo 'a b' > /data/local/tmp/x; exit 3"
    assert device_command(cmd, None, "@@M:") == "sh -c 'echo '\"'\"'a b'\"'\"' > /data/local/tmp/x; exit 3'; echo \"@@M:$?@@\""
    assert device_command("id -u", ("su", "0"), "@@M:") == "su 0 sh -c 'id -u'; echo \"@@M:$?@@\""
    assert device_command("id -u", ("su", "-c"), "@@M:") == "su -c 'sh -c '\"'\"'id -u'\"'\"''; echo \"@@M:$?@@\""


def test_device_command_runs_in_a_real_shell():
    """The constructed string, given to a POSIX sh as adbd would, keeps quoting and status."""
    cmd = device_command("printf '%s|' 'a b' \"$HOME\"x; exit 3", None, "@@M1:")
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env={"HOME": "/h", "PATH": os.environ["PATH"]}).stdout
    assert split_status(out, "@@M1:") == ("a b|/hx|", 3)


def test_exit_status_shell_v2_and_legacy():
    # shell_v2 adbd: adb's exit status is the command's; the marker agrees and wins
    assert shell_result(3, "hello\n@@BH1-RC:3@@\n", "@@BH1-RC:", True).status == 3
    assert shell_result(3, "hello\n@@BH1-RC:3@@\n", "@@BH1-RC:", True).output == "hello\n"
    # legacy adbd: a pty (CRLF) and adb exits 0; only the marker knows
    legacy = shell_result(0, "line one\r\nline two\r\n@@BH2-RC:1@@\r\n", "@@BH2-RC:", False)
    assert (legacy.status, legacy.output) == (1, "line one\nline two\n")
    # the marker got lost (killed mid-way): shell_v2 still has a status, legacy has none
    assert shell_result(137, "partial", "@@BH3-RC:", True).status == 137
    assert shell_result(0, "partial", "@@BH3-RC:", False) is None
    # adb's own failure is not the command's status
    assert shell_result(1, "error: device offline\n", "@@BH4-RC:", True) is None
    assert shell_result(1, "adb: device 'emulator-5554' not found\n", "@@BH5-RC:", True) is None


def test_marker_of_another_call_is_ignored():
    out, status = split_status("@@BH1-RC:0@@\nx\n@@BH12-RC:5@@\n", "@@BH12-RC:")
    assert status == 5 and "@@BH12" not in out


def test_adb_root_outputs():
    assert root_state("restarting adbd as root\n") == "restarting"
    assert root_state("adbd is already running as root\n") == "already"
    assert root_state("adbd cannot run as root in production builds\n") == "refused"
    assert root_state("") == "unknown"


def test_specs():
    assert TargetSpec.parse("adb") == TargetSpec("adb", "adb", serial=None)
    assert TargetSpec.parse("adb:emulator-5554") == TargetSpec("adb", "adb:emulator-5554", serial="emulator-5554")
    assert TargetSpec.parse("adb:192.168.1.20:5555") == TargetSpec("adb", "adb:192.168.1.20:5555",
                                                                    serial="192.168.1.20:5555")
    assert TargetSpec.parse("local") == TargetSpec("local", "local")
    assert TargetSpec.parse("ssh://root@127.0.0.1:2222") == TargetSpec("ssh", "ssh://root@127.0.0.1:2222",
                                                                        user="root", host="127.0.0.1", port=2222)
    assert TargetSpec.parse("ssh://me@[::1]") == TargetSpec("ssh", "ssh://me@[::1]", user="me", host="::1", port=22)
    assert TargetSpec.parse("qemu:arm64") == TargetSpec("qemu", "qemu:arm64", arch="arm64")
    assert str(TargetSpec.parse("ssh://root@h:2222")) == "ssh://root@h:2222"  # shown and reported as given
    for bad in ("adb:", "ssh://127.0.0.1", "ssh://root@h:99999", "ssh://root:pw@h", "sshx://root@h", "qemu:riscv64"):
        with pytest.raises(ConfigError):
            TargetSpec.parse(bad)
    with pytest.raises(ConfigError, match="ssh:// targets only"):
        check_options(TargetSpec.parse("adb"), TargetOptions(insecure_accept_host_key=True))


def test_adb_target_builds_its_commands(tmp_path):
    t = AdbTarget("adb:emulator-5554", "emulator-5554", adb="/opt/adb")
    assert t.label == "adb:emulator-5554" and t.workdir == "/data/local/tmp/binder-harness"
    assert t._stage_path("/data/local/tmp/binder-harness/bin/binder-probe-arm64").startswith(
        "/data/local/tmp/binder-harness/.stage/")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.usefixtures("host_adb")
def test_real_adb_without_device(tmp_path, monkeypatch):
    """The platform adb tool with no device attached: one line naming the target, exit 2.

    A private adb server port keeps this away from any server the user runs; the
    server this starts is killed afterwards.
    """
    port = str(_free_port())
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", port)
    try:
        run = cli("run", "one_copy.sync_sizes", "--target", "adb", out=tmp_path)
        lines = run.stderr.strip().splitlines()
        assert run.status == 2, run.stderr
        assert "Traceback" not in run.stderr
        assert lines[-1] == "binder-harness: adb: no device attached ('adb devices' lists none)"
        run = cli("run", "one_copy.sync_sizes", "--target", "adb:emulator-5554", out=tmp_path)
        assert run.status == 2 and "adb:emulator-5554: no device with serial emulator-5554" in run.stderr.splitlines()[-1]
    finally:
        subprocess.run(["adb", "-P", port, "kill-server"], capture_output=True, timeout=30)


def test_abi_from_uname_where_there_is_no_getprop():
    from harness.targets.adb import device_abi

    assert device_abi("", "x86_64\n") == ("x86_64", "x86_64")  # Debian's adbd in a guest: no getprop
    assert device_abi("", "aarch64") == ("arm64", "arm64")
    assert device_abi("arm64-v8a", "whatever") == ("arm64", "arm64")  # Android: getprop wins
    with pytest.raises(TargetUnavailable, match="unsupported `uname -m` 'mips'"):
        device_abi("", "mips")


def test_selinux_denial_is_one_line_with_the_fix():
    from harness.judging.verdicts import selinux_denial

    # the kernel's audit line format (security/selinux/avc.c avc_audit_pre_callback)
    avc = ('[  12.3] type=1400 audit(0.0:42): avc:  denied  { read write } for pid=4242 comm="binder-probe-ar" '
           'name="binder" dev="tmpfs" ino=1 scontext=u:r:shell:s0 tcontext=u:object_r:binder_device:s0 '
           'tclass=chr_file permissive=0')
    line = selinux_denial(avc, "")
    assert line is not None and "\n" not in line
    assert line.startswith("SELinux denied the probe (avc:  denied  { read write }") and "adb root" in line
    assert "setenforce 0" in line
    eacces = '{"ev":"done","ok":false,"error":"Eserver open /dev/binder: EACCES"}'
    assert "may not open /dev/binder" in (selinux_denial("", eacces) or "")
    assert selinux_denial("binder: 42:42 ioctl 620c 0 returned -22", '"error":"open /dev/binder: ENOENT"') is None
