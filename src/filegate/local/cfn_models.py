"""CloudFormation resource types the emulator lacks, built on moto's own service models.

moto 5.2.5 has no CloudFormation model for ``AWS::Lambda::Url``: a template with one fails to
create (and ``!GetAtt X.FunctionUrl`` raises). ``FunctionUrl`` creates the URL through moto's
Lambda backend (``create_function_url_config``), so the stack deploys and its output exists;
the local gateway (``gateway.py``) is what serves the URL.
"""

from __future__ import annotations

from typing import Any

_registered = False


class FunctionUrl:
    """``AWS::Lambda::Url`` for moto's CloudFormation.

    A plain class rather than a ``CloudFormationModel`` subclass: moto finds those through
    ``__subclasses__()``, which would register it in every process that imports this module.
    ``register`` adds it to the model map explicitly, in the emulator process only.
    """

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def has_cfn_attr(cls, attribute: str) -> bool:
        return attribute in ("FunctionArn", "FunctionUrl")

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **_: Any
    ) -> FunctionUrl:
        from moto.awslambda.models import lambda_backends

        properties = dict(template["Properties"])
        target = properties.pop("TargetFunctionArn")
        backend = lambda_backends[account_id][region]
        return cls(backend.create_function_url_config(target, properties))

    @property
    def physical_resource_id(self) -> str:
        return str(self.config.function.function_arn)  # Ref of a function URL: the function ARN

    def get_cfn_attribute(self, attribute: str) -> str:
        if attribute == "FunctionUrl":
            return f"{self.config.url}/"  # AWS's function URLs end with a slash; moto's do not
        return str(self.config.function.function_arn)

    def is_created(self) -> bool:
        return True


def register() -> None:
    """Add the missing types to moto's CloudFormation model map (idempotent)."""
    global _registered  # noqa: PLW0603 - registration is process-wide by nature
    if _registered:
        return
    from moto.cloudformation import parsing

    models = {**parsing.get_model_map(), "AWS::Lambda::Url": FunctionUrl}
    setattr(parsing, "get_model_map", lambda: models)  # noqa: B010 - replacing a cached function
    _registered = True
