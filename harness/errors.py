"""Error types that map to the harness's exit statuses (DESIGN §2)."""


class ConfigError(Exception):
    """Bad usage or configuration: exit status 2 with this one-line message."""


class TargetError(Exception):
    """The target cannot be reached or stopped answering."""


class GuestCrashed(TargetError):
    """The guest kernel panicked or QEMU exited while a command was running."""


class TargetUnavailable(ConfigError):
    """The target cannot be used at all: unreachable, authentication or host key refused,
    no device, device unauthorized or offline. Exit status 2 with one line naming the target."""
