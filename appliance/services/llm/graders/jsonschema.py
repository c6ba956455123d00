"""A small JSON Schema validator: the keywords graders of model output need (draft
2020-12 names, draft-07's `definitions` too). Keywords it does not know are ignored, as
the specification says of unknown keywords; `format` is an annotation only.

Why not the `jsonschema` package: this is all a grader uses, and it is small enough to
read in one sitting; the appliance then ships one dependency less.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_ERRORS = 20
MAX_DEPTH = 64

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def schema_problems(schema: Any) -> list[str]:
    """Whether `schema` can be used: an object (or boolean) whose types are known."""
    if isinstance(schema, bool):
        return []
    if not isinstance(schema, dict):
        return ["a JSON schema is an object"]
    problems: list[str] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        kinds = node.get("type")
        for kind in kinds if isinstance(kinds, list) else [kinds] if kinds is not None else []:
            if not isinstance(kind, str) or kind not in _TYPES:
                problems.append(f"{path}.type: unknown type {kind!r}")
        if isinstance(node.get("pattern"), str):
            try:
                re.compile(node["pattern"])
            except re.error as exc:
                problems.append(f"{path}.pattern: {exc}")
        for key in ("properties", "patternProperties", "$defs", "definitions"):
            if isinstance(node.get(key), dict):
                for name, sub in node[key].items():
                    walk(sub, f"{path}.{key}.{name}")
        for key in ("items", "not", "additionalProperties", "additionalItems", "contains"):
            subs = node.get(key)
            for index, sub in enumerate(subs if isinstance(subs, list) else [subs]):
                walk(sub, f"{path}.{key}" + (f"[{index}]" if isinstance(subs, list) else ""))
        for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
            if isinstance(node.get(key), list):
                for index, sub in enumerate(node[key]):
                    walk(sub, f"{path}.{key}[{index}]")

    walk(schema, "schema")
    return problems


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class _Validator:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{path}: {message}")

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValueError(f"only references inside the schema are followed, not {ref!r}")
        node = self.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise ValueError(f"reference {ref!r} names nothing in the schema")
        return node

    def valid(self, schema: Any, value: Any, path: str, depth: int = 0) -> bool:
        before = len(self.errors)
        self.check(schema, value, path, depth)
        return len(self.errors) == before

    def quietly(self, schema: Any, value: Any, path: str, depth: int) -> bool:
        """Whether `value` is valid, without keeping the errors (anyOf, oneOf, not)."""
        saved = self.errors
        self.errors = []
        try:
            self.check(schema, value, path, depth)
            return not self.errors
        finally:
            self.errors = saved

    def check(self, schema: Any, value: Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.fail(path, "the schema nests (or refers to itself) too deeply")
            return
        if schema is True or schema == {}:
            return
        if schema is False:
            self.fail(path, "no value is allowed here")
            return
        if not isinstance(schema, dict):
            return
        if "$ref" in schema:
            try:
                target = self.resolve(str(schema["$ref"]))
            except ValueError as exc:
                self.fail(path, str(exc))
                return
            self.check(target, value, path, depth + 1)
        self._type(schema, value, path)
        self._values(schema, value, path)
        self._combinators(schema, value, path, depth)
        if isinstance(value, dict):
            self._object(schema, value, path, depth)
        elif isinstance(value, list):
            self._array(schema, value, path, depth)
        elif isinstance(value, str):
            self._string(schema, value, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._number(schema, value, path)

    def _type(self, schema: dict[str, Any], value: Any, path: str) -> None:
        kinds = schema.get("type")
        if kinds is None:
            return
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not any(isinstance(k, str) and k in _TYPES and _TYPES[k](value) for k in kinds):
            self.fail(path, f"expected {' or '.join(map(str, kinds))}, got {_kind(value)}")

    def _values(self, schema: dict[str, Any], value: Any, path: str) -> None:
        if "const" in schema and not _equal(schema["const"], value):
            self.fail(path, f"must be {schema['const']!r}")
        if isinstance(schema.get("enum"), list) and not any(_equal(v, value) for v in schema["enum"]):
            self.fail(path, f"must be one of {schema['enum']!r}")

    def _combinators(self, schema: dict[str, Any], value: Any, path: str, depth: int) -> None:
        for sub in schema.get("allOf") or []:
            self.check(sub, value, path, depth + 1)
        if isinstance(schema.get("anyOf"), list) and not any(
            self.quietly(sub, value, path, depth + 1) for sub in schema["anyOf"]
        ):
            self.fail(path, "matches none of anyOf")
        if isinstance(schema.get("oneOf"), list):
            matching = sum(self.quietly(sub, value, path, depth + 1) for sub in schema["oneOf"])
            if matching != 1:
                self.fail(path, f"must match exactly one of oneOf, matches {matching}")
        if "not" in schema and self.quietly(schema["not"], value, path, depth + 1):
            self.fail(path, "must not match `not`")

    def _object(self, schema: dict[str, Any], value: dict[str, Any], path: str, depth: int) -> None:
        for name in schema.get("required") or []:
            if name not in value:
                self.fail(path, f"missing required property {name!r}")
        properties = _mapping(schema, "properties")
        patterns = _mapping(schema, "patternProperties")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            where = f"{path}.{key}"
            matched = key in properties
            if matched:
                self.check(properties[key], item, where, depth + 1)
            for pattern, sub in patterns.items():
                if re.search(pattern, key):
                    matched = True
                    self.check(sub, item, where, depth + 1)
            if not matched:
                if extra is False:
                    self.fail(path, f"property {key!r} is not allowed")
                elif isinstance(extra, dict):
                    self.check(extra, item, where, depth + 1)
        if isinstance(schema.get("minProperties"), int) and len(value) < schema["minProperties"]:
            self.fail(path, f"needs at least {schema['minProperties']} properties")
        if isinstance(schema.get("maxProperties"), int) and len(value) > schema["maxProperties"]:
            self.fail(path, f"allows at most {schema['maxProperties']} properties")

    def _array(self, schema: dict[str, Any], value: list[Any], path: str, depth: int) -> None:
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):  # draft-07's tuple form
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix if isinstance(prefix, list) else []
        for index, item in enumerate(value):
            sub = prefix[index] if index < len(prefix) else items
            if sub is not None:
                self.check(sub, item, f"{path}[{index}]", depth + 1)
        if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
            self.fail(path, f"needs at least {schema['minItems']} items")
        if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
            self.fail(path, f"allows at most {schema['maxItems']} items")
        if schema.get("uniqueItems") is True:
            for i, a in enumerate(value):
                if any(_equal(a, b) for b in value[i + 1 :]):
                    self.fail(path, "items must be unique")
                    break
        if "contains" in schema and not any(self.quietly(schema["contains"], item, path, depth + 1) for item in value):
            self.fail(path, "no item matches `contains`")

    def _string(self, schema: dict[str, Any], value: str, path: str) -> None:
        if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
            self.fail(path, f"must be at least {schema['minLength']} characters")
        if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
            self.fail(path, f"must be at most {schema['maxLength']} characters")
        if isinstance(schema.get("pattern"), str) and not re.search(schema["pattern"], value):
            self.fail(path, f"does not match /{schema['pattern']}/")

    def _number(self, schema: dict[str, Any], value: float, path: str) -> None:
        def bound(key: str) -> float | None:
            found = schema.get(key)
            return float(found) if isinstance(found, int | float) and not isinstance(found, bool) else None

        if (low := bound("minimum")) is not None and value < low:
            self.fail(path, f"must be at least {low:g}")
        if (high := bound("maximum")) is not None and value > high:
            self.fail(path, f"must be at most {high:g}")
        if (low := bound("exclusiveMinimum")) is not None and value <= low:
            self.fail(path, f"must be more than {low:g}")
        if (high := bound("exclusiveMaximum")) is not None and value >= high:
            self.fail(path, f"must be less than {high:g}")
        step = bound("multipleOf")
        if step and not math.isclose(value / step, round(value / step), abs_tol=1e-9):
            self.fail(path, f"must be a multiple of {step:g}")


def _mapping(schema: dict[str, Any], key: str) -> dict[str, Any]:
    found = schema.get(key)
    return found if isinstance(found, dict) else {}


def _kind(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def validate(schema: Any, value: Any) -> list[str]:
    """What is wrong with `value` under `schema` ([] when it is valid), at most 20."""
    validator = _Validator(schema)
    validator.check(schema, value, "$", 0)
    return validator.errors
