"""What every container the appliance makes carries besides its limits (`limits.container_options`):
labels saying whose it is, and the environment its programs start with.

Two kinds of containers, told apart by their labels:

* ephemeral ones (the warm pool's, the batch lane's) end with the process that made
  them; they carry `INSTANCE_LABEL`, so the next start removes whatever a crash left
  behind (`DockerEngine.remove_instance_containers`);
* a persistent sandbox's outlives the process: it carries `PERSISTENT_LABEL` instead, so
  that clean-up leaves it alone and the reconciler finds it again.

A sandbox with `network.allowed_hosts` also has an egress proxy container and an internal
network (runtime/egress.py); both carry `EGRESS_LABEL` and `EGRESS_SANDBOX_LABEL`, not the
two above, so neither clean-up nor `persistent_sandbox.list_containers` mistakes them for
sandboxes; the reconciler removes those whose sandbox is gone.
"""

from __future__ import annotations

from collections.abc import Mapping

MANAGED_LABEL = "appliance.managed"  # any container of this appliance, of any installation
INSTANCE_LABEL = "appliance.instance"  # value: the installation's instance id
PERSISTENT_LABEL = "appliance.persistent"  # value: the installation's instance id
SANDBOX_LABEL = "appliance.sandbox"  # value: the persistent sandbox's id
LANGUAGE_LABEL = "appliance.language"
ENGINE_LABEL = "appliance.engine"
OWNER_LABEL = "appliance.owner"
BATCH_LABEL = "appliance.batch"
EGRESS_LABEL = "appliance.egress"  # value: the installation's instance id
EGRESS_SANDBOX_LABEL = "appliance.egress.sandbox"  # value: the persistent sandbox's id

# The runners and compilers of the execution images find their tools here.
EXECUTION_PATH = "/usr/local/bin:/usr/bin:/bin"


def ephemeral_labels(instance_id: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**(extra or {}), MANAGED_LABEL: "true", INSTANCE_LABEL: instance_id}


def persistent_labels(instance_id: str, sandbox_id: str) -> dict[str, str]:
    return {MANAGED_LABEL: "true", PERSISTENT_LABEL: instance_id, SANDBOX_LABEL: sandbox_id}


def egress_labels(instance_id: str, sandbox_id: str) -> dict[str, str]:
    return {MANAGED_LABEL: "true", EGRESS_LABEL: instance_id, EGRESS_SANDBOX_LABEL: sandbox_id}


def container_environment(
    home: str, environment: Mapping[str, str], *, path: str | None = EXECUTION_PATH
) -> dict[str, str]:
    """The variables a container starts with, `environment` on top. `path=None` leaves
    PATH to the image's own ENV (Docker adds its default when the image sets none)."""
    base = {"HOME": home, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
    if path is not None:
        base["PATH"] = path
    return {**base, **environment}
