"""template.yaml read for the local stack: parameters, conditions and the intrinsic functions the
template uses, resolved against the physical names the local stack gives its resources.

The local stack provisions from the template itself, so there is no second list of resources to
keep in step with it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ACCOUNT = "123456789012"
REGION = "us-east-1"
NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")  # ${Name} or ${Resource.Attribute}; ${!Literal} is not one


class TemplateError(ValueError):
    """The template uses something the local stack cannot resolve."""


@dataclass
class Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]
    physical_id: str = ""
    ref: str = ""  # what Ref returns, when it is not the physical id (a queue's URL)
    attributes: dict[str, str] = field(default_factory=dict)


def load(path: Path) -> dict[str, Any]:
    document = yaml_parse(path.read_text())
    if not isinstance(document, dict):
        raise TemplateError(f"{path} is not a template")
    return document


class Resolver:
    """Evaluates intrinsic functions. Resource refs resolve to ``Resource.physical_id`` and
    ``Fn::GetAtt`` to ``Resource.attributes``, both filled in by the provisioner."""

    def __init__(
        self,
        template: dict[str, Any],
        stack_name: str,
        parameters: Mapping[str, str] | None = None,
        *,
        region: str = REGION,
        account: str = ACCOUNT,
    ) -> None:
        self.template = template
        self.stack_name = stack_name
        uuid_hex = hashlib.sha256(stack_name.encode()).hexdigest()
        stack_uuid = f"{uuid_hex[:8]}-{uuid_hex[8:12]}-{uuid_hex[12:16]}-{uuid_hex[16:20]}-{uuid_hex[20:32]}"
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/{stack_uuid}",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.parameters = self._parameters(parameters or {})
        self._conditions: dict[str, bool] = {}
        self.resources: dict[str, Resource] = {
            logical_id: Resource(logical_id, body["Type"], dict(body.get("Properties") or {}))
            for logical_id, body in (template.get("Resources") or {}).items()
            if self.holds(body)
        }

    def update_parameters(self, values: Mapping[str, str]) -> None:
        """New values for some parameters, as a deploy of the same stack gives them. Refused when they
        would add or remove a resource: the local stack changes no resource in place."""
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            raise TemplateError(f"unknown parameters {unknown}")
        before = dict(self.parameters), dict(self._conditions)
        self.parameters.update(values)
        self._conditions = {}
        bodies = (self.template.get("Resources") or {}).items()
        changed = {logical_id for logical_id, body in bodies if self.holds(body)} ^ set(self.resources)
        if changed:
            self.parameters, self._conditions = before
            raise TemplateError(f"{sorted(changed)} would be added or removed: start a new local stack for that")

    def condition(self, name: str) -> bool:
        """A named condition's value (conditions may refer to one another in any order)."""
        if name not in self._conditions:
            expressions = self.template.get("Conditions") or {}
            if name not in expressions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(expressions[name]))
        return self._conditions[name]

    def holds(self, body: Mapping[str, Any]) -> bool:
        """Whether a resource or output exists: it has no Condition, or its condition is true."""
        return "Condition" not in body or self.condition(str(body["Condition"]))

    def _parameters(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in (self.template.get("Parameters") or {}).items():
            if name in overrides:
                values[name] = overrides[name]
            elif "Default" in spec:
                values[name] = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default; pass it")
        return values

    def globals_for(self, kind: str) -> dict[str, Any]:
        return dict((self.template.get("Globals") or {}).get(kind) or {})

    # -- evaluation -----------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, arg),) = value.items()
            handler = _FUNCTIONS.get(name)
            if handler is not None:
                return handler(self, arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            physical = self.resources[name].ref or self.resources[name].physical_id
            if not physical:
                raise TemplateError(f"{name} is referenced before the local stack created it")
            return physical
        raise TemplateError(f"Ref to unknown name {name}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None or attribute not in resource.attributes:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute} is not available locally")
        return resource.attributes[attribute]

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def value_of(name: str) -> str:
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return str(self.ref(name))

        return substitute(text, value_of)


def substitute(text: str, value_of: Callable[[str], str]) -> str:
    """An Fn::Sub string with each ``${Name}`` or ``${Resource.Attribute}`` replaced by
    ``value_of(name)``."""
    return _SUB_VARIABLE.sub(lambda match: value_of(match.group(1)), text)


def _ref(r: Resolver, arg: Any) -> Any:
    return r.ref(arg)


def _get_att(r: Resolver, arg: Any) -> str:
    if isinstance(arg, str):
        arg = arg.split(".", 1)
    return r.get_att(arg[0], r.resolve(arg[1]))


def _sub(r: Resolver, arg: Any) -> str:
    if isinstance(arg, str):
        return r.sub(arg, {})
    text, variables = arg
    return r.sub(text, {k: r.resolve(v) for k, v in variables.items()})


def _join(r: Resolver, arg: Any) -> str:
    delimiter, items = arg
    return str(delimiter).join(str(v) for v in r.resolve(items))


def _select(r: Resolver, arg: Any) -> Any:
    index, items = arg
    return r.resolve(items)[int(r.resolve(index))]


def _split(r: Resolver, arg: Any) -> list[str]:
    delimiter, text = arg
    return str(r.resolve(text)).split(delimiter)


def _if(r: Resolver, arg: Any) -> Any:
    condition, then, otherwise = arg
    return r.resolve(then if r.condition(condition) else otherwise)


def _equals(r: Resolver, arg: Any) -> bool:
    a, b = arg
    return str(r.resolve(a)) == str(r.resolve(b))


def _not(r: Resolver, arg: Any) -> bool:
    return not r.resolve(arg[0])


def _and(r: Resolver, arg: Any) -> bool:
    return all(r.resolve(a) for a in arg)


def _or(r: Resolver, arg: Any) -> bool:
    return any(r.resolve(a) for a in arg)


def _condition(r: Resolver, arg: Any) -> bool:
    return r.condition(arg)


_FUNCTIONS = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::Not": _not,
    "Fn::And": _and,
    "Fn::Or": _or,
    "Condition": _condition,
}
