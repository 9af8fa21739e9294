"""The Kubernetes Pod Security Standards ("baseline" and "restricted", as of Kubernetes 1.33), checked offline.

`violations(pod_spec, level)` lists what the Pod Security admission controller would refuse in a pod spec,
one readable line per problem (empty: admitted). Only the rules a Linux pod can break are implemented;
see https://kubernetes.io/docs/concepts/security/pod-security-standards/.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret"}
LEVELS = ("baseline", "restricted")


def containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or ()


def violations(spec: Mapping[str, Any], level: str = "restricted") -> list[str]:
    """What the Pod Security admission controller at `level` would refuse in this pod spec."""
    assert level in LEVELS, level
    found = _baseline(spec)
    if level == "restricted":
        found += _restricted(spec)
    return found


def _baseline(spec: Mapping[str, Any]) -> list[str]:
    found = [f"{key} is true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    pod_context = spec.get("securityContext") or {}
    found += [f"volume {volume['name']} is a hostPath" for volume in spec.get("volumes") or () if "hostPath" in volume]
    found += [f"sysctl {sysctl['name']} is not safe" for sysctl in pod_context.get("sysctls") or ()
              if sysctl["name"] not in SAFE_SYSCTLS]
    found += _baseline_context(pod_context, "pod")
    for container in containers(spec):
        context = container.get("securityContext") or {}
        where = f"container {container['name']}"
        if context.get("privileged"):
            found.append(f"{where} is privileged")
        added = set((context.get("capabilities") or {}).get("add") or ())
        if added - BASELINE_CAPABILITIES:
            found.append(f"{where} adds capabilities {sorted(added - BASELINE_CAPABILITIES)}")
        if any(port.get("hostPort") for port in container.get("ports") or ()):
            found.append(f"{where} uses a hostPort")
        if context.get("procMount", "Default") != "Default":
            found.append(f"{where} sets procMount {context['procMount']}")
        found += _baseline_context(context, where)
    return found


def _baseline_context(context: Mapping[str, Any], where: str) -> list[str]:
    found = []
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        found.append(f"{where} is a Windows host process")
    if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where} has an Unconfined seccomp profile")
    if (context.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where} has an Unconfined AppArmor profile")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t",
                                   "container_engine_t") or selinux.get("user") or selinux.get("role"):
        found.append(f"{where} sets SELinux options {selinux}")
    return found


def _restricted(spec: Mapping[str, Any]) -> list[str]:
    found = []
    for volume in spec.get("volumes") or ():
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']} is of type {sorted(kinds - RESTRICTED_VOLUME_TYPES)}")
    pod_context = spec.get("securityContext") or {}
    if pod_context.get("runAsUser") == 0:
        found.append("the pod runs as user 0")
    for container in containers(spec):
        context = container.get("securityContext") or {}
        where = f"container {container['name']}"
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where} does not set allowPrivilegeEscalation: false")
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            found.append(f"{where} does not run as non-root (runAsNonRoot: true on the pod or the container)")
        if context.get("runAsUser") == 0:
            found.append(f"{where} runs as user 0")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where} has no RuntimeDefault or Localhost seccomp profile")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or ()):
            found.append(f"{where} does not drop ALL capabilities")
        if set(capabilities.get("add") or ()) - {"NET_BIND_SERVICE"}:
            found.append(f"{where} adds capabilities other than NET_BIND_SERVICE")
    return found
