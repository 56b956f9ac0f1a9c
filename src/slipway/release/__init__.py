"""Releasing a model to the serving Deployment: pin, apply, roll back, audit.

Pinning the version in a kustomize overlay, ``kubectl`` apply and rollout, rollback (``kubectl
rollout undo``) with the registry alias and champion marker moved back, and the audit trail of
who released what, when and why.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEPLOYMENT": "names",
        "DeployRequest": "deploy",
        "REVISION_ANNOTATION": "names",
        "ServedVersion": "kubectl",
        "VERSION_ENV": "names",
        "Kubectl": "kubectl",
        "ReleaseEvent": "audit",
        "RollbackRequest": "rollback",
        "append_audit_record": "audit",
        "deploy_version": "deploy",
        "find_registry_version": "sync",
        "parse_duration": "kubectl",
        "read_audit_trail": "audit",
        "read_model_version": "overlay",
        "render_overlay": "overlay",
        "resume_command": "sync",
        "rollback_deployment": "rollback",
        "served_version": "kubectl",
        "set_model_version": "overlay",
        "sync_registry": "sync",
    },
)
