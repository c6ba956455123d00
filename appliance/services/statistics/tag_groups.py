"""Grouping (and pairing) runs by their tags (services/experiments/run_tags.py).

Two group fields, neither of which can be a hyperparameter's or a metadata key's name
(those always carry their `hyperparameters.` or `metadata.` prefix):

- `tags`: the groups are tags; a run is in the group of the one requested tag it
  carries. `groups` is required (it says which tags are compared). A run carrying none
  of them is left out; one carrying two of them is a 422, as it would count twice.
- `tags.<key>`: for tags of the form `<key>:<value>` (`model:gpt4`), a run is in the
  group `<value>`. A run without such a tag is left out; one with two different values
  among those compared (all of them, without `groups`) is a 422.

`tags.<key>` pairs too (pair_field `tags.item` pairs runs tagged `item:17`); a run
whose pair tag is missing or given twice is a 422.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.core.errors import ValidationError
from appliance.core.statistics import KeyedValue, MetricQuery
from appliance.services.experiments.run_tags import is_tag
from appliance.store.experiment_tables import TaggedValue

TAGS_FIELD = "tags"
TAG_KEY_PREFIX = "tags."
TAG_FIELD_RULE = (
    "tags (the groups are tags; a run is in the group of the one it carries) or tags.<key> "
    "(a run tagged <key>:<value> is in the group <value>)"
)


def is_tag_field(field: str | None) -> bool:
    return field is not None and (field == TAGS_FIELD or field.startswith(TAG_KEY_PREFIX))


def tag_field_problem(field: str, name: str, groups: Sequence[str] | None) -> str | None:
    """What is wrong with a tag field as group_field or pair_field (`name`), or None."""
    if field == TAGS_FIELD:
        if name == "pair_field":
            return (
                "tags cannot pair runs; pair by tags.<key> (runs tagged <key>:<item>), seed or hyperparameters.<name>"
            )
        if groups is None:
            return 'group_field tags compares the tags named in groups: give groups, e.g. ["baseline", "candidate"]'
        bad = [g for g in groups if not is_tag(g)]
        if bad:
            return f"with group_field tags, groups are tags, and {', '.join(map(repr, bad[:5]))} is none"
        return None
    key = field[len(TAG_KEY_PREFIX) :]
    if not is_tag(key) or ":" in key:
        return f"{field!r}: after tags. comes the key of tags <key>:<value> (letters, digits or _ . / = + @ -)"
    return None


def _problem(field: str, reason: str) -> ValidationError:
    return ValidationError(f"{field}: {reason}", details={"field": field, "reason": reason})


def _values_of(tags: list[str], key: str) -> list[str]:
    prefix = key + ":"
    found: list[str] = []
    for tag in tags:
        if tag.startswith(prefix) and tag[len(prefix) :] not in found:
            found.append(tag[len(prefix) :])
    return found


def _group(item: TaggedValue, query: MetricQuery) -> str | None:
    wanted = query.groups
    if query.group_field == TAGS_FIELD:
        assert wanted is not None  # the service requires groups with group_field tags
        carried = [g for g in wanted if g in item.tags]
        if len(carried) > 1:
            raise _problem(
                "group_field",
                f"run {item.run_id} carries the tags {', '.join(map(repr, carried))}, each a group compared: "
                "a run may be in one group only (compare tags no run carries together, or untag it)",
            )
        return carried[0] if carried else None
    if not is_tag_field(query.group_field):
        return item.group
    key = query.group_field[len(TAG_KEY_PREFIX) :]
    values = [v for v in _values_of(item.tags, key) if wanted is None or v in wanted]
    if len(values) > 1:
        shown = ", ".join(f"{key}:{v}" for v in values)
        raise _problem(
            "group_field",
            f"run {item.run_id} carries {shown}: with group_field {query.group_field} a run may have one {key}: "
            "tag among the groups compared",
        )
    return values[0] if values else None


def _pair(item: TaggedValue, query: MetricQuery) -> str | None:
    if not is_tag_field(query.pair_field):
        return item.pair
    assert query.pair_field is not None
    key = query.pair_field[len(TAG_KEY_PREFIX) :]
    values = _values_of(item.tags, key)
    if len(values) != 1:
        said = "has no" if not values else f"has {len(values)} different"
        raise _problem(
            "pair_field", f"run {item.run_id} {said} {key}: tags; pairing by {query.pair_field} needs exactly one"
        )
    return values[0]


def keyed_by_tags(found: list[TaggedValue], query: MetricQuery) -> list[KeyedValue]:
    """The runs' values with their groups and pair keys read off their tags; runs in no
    group are left out."""
    keyed: list[KeyedValue] = []
    for item in found:
        group = _group(item, query)
        if group is not None:
            keyed.append(KeyedValue(group=group, value=item.value, pair=_pair(item, query)))
    return keyed
