"""The built-in Kubernetes server: a cluster's resources, logs and events as tools."""

from catalyst_mcp.servers.kubernetes.server import KubernetesServer

__all__ = ["KubernetesServer"]
