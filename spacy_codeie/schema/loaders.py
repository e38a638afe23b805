"""Schema loaders registered for configs: from a dict (inline in a config) and from a Python file of classes.

A schema file is read with `ast` and never imported or executed, so an ontology from anyone is safe to load.
Whatever a file or dict holds, a loader returns a valid schema or raises a SchemaError that says what to fix.
"""
from __future__ import annotations

import ast
import json
import reprlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from spacy.util import registry

from ..errors import SchemaError
from .types import (
    ANY_ENTITY,
    EntityType,
    EventType,
    RelationType,
    Role,
    Schema,
    class_name_from_label,
    parameter_name_from_role,
)

BASES = {"Entity": "entity", "Relation": "relation", "Event": "event"}
# A schema is a few kilobytes; a bigger file is a mistake, and reading it whole would cost memory for nothing.
MAX_SCHEMA_BYTES = 8 * 1024 * 1024

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60


def _show(value: Any) -> str:
    """A short repr for error messages, safe for deeply nested or huge values."""
    return _SHORT.repr(value)


@contextmanager
def _nesting(where: str) -> Iterator[None]:
    """Turn the recursion or memory errors of reading absurdly nested data into a SchemaError."""
    try:
        yield
    except (RecursionError, MemoryError):
        raise SchemaError(f"{where} nests too deeply to be read. A schema is a flat list of types; check that "
                          "the file is the schema you meant.") from None


def _read_text(path: Union[str, Path]) -> str:
    """The text of a schema file: UTF-8 (a byte-order mark is allowed), at most MAX_SCHEMA_BYTES."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"The schema file {str(path)!r} does not exist. Check the path in your config.")
    try:
        size = path.stat().st_size
        if size > MAX_SCHEMA_BYTES:
            raise SchemaError(f"The schema file {str(path)!r} has {size:,} bytes; a schema file may have at most "
                              f"{MAX_SCHEMA_BYTES:,}. Check that the path points at the schema.")
        data = path.read_bytes()
    except OSError as err:
        raise SchemaError(f"The schema file {str(path)!r} cannot be read: {err.strerror or err}.") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SchemaError(f"The schema file {str(path)!r} is not UTF-8 text (byte {err.start} is not valid "
                          "UTF-8). Save it with UTF-8 encoding.") from None


# ---------------------------------------------------------------------------------------------
# dict schemas
# ---------------------------------------------------------------------------------------------
def _as_tuple_of_labels(value: Any, where: str) -> Tuple[str, ...]:
    if value is None:
        return (ANY_ENTITY,)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value) or (ANY_ENTITY,)
    raise SchemaError(f"{where} must be an entity label or a list of entity labels, not {_show(value)}.")


def _spec(value: Any, where: str) -> Dict[str, Any]:
    """A type given as a bare description string, None, or a dict of fields."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"description": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise SchemaError(f"{where} must be a description string or a dict of fields, not {type(value).__name__}.")


def _items(value: Any, where: str) -> List[Tuple[str, Any]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [(v, None) for v in value]
    raise SchemaError(f"'{where}' must map labels to their definitions (or list labels), not {_show(value)}.")


def _check_keys(spec: Dict[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(map(str, set(spec) - set(allowed)))
    if unknown:
        raise SchemaError(f"{where} has unknown field(s) {_show(unknown)}. Allowed fields: {list(allowed)}.")


def _text(value: Any, where: str) -> str:
    """An optional text field (a description): a string, or nothing."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise SchemaError(f"{where} must be a string, not {_show(value)}.")


def _label(value: Any, what: str) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise SchemaError(f"{what} must be a non-empty string, not {_show(value)}.")


def _name(value: Any, where: str) -> Optional[str]:
    """An optional explicit name (class_name, parameter): a string, or nothing."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    raise SchemaError(f"{where} must be a string, not {_show(value)}.")


def _strings(value: Any, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SchemaError(f"{where} must be a list of strings, not {_show(value)}.")


def schema_from_mapping(data: Mapping[str, Any]) -> Schema:
    """Build and validate a schema from plain data (the shape `Schema.to_dict` writes)."""
    if not isinstance(data, Mapping):
        raise SchemaError(f"A schema must be a dict with 'entities', 'relations' and/or 'events', not "
                          f"{type(data).__name__} {_show(data)}.")
    with _nesting("The schema"):
        return _schema_from_mapping(data)


def _schema_from_mapping(data: Mapping[str, Any]) -> Schema:
    _check_keys(dict(data), ("entities", "relations", "events"), "The schema")
    entities = []
    for label, value in _items(data.get("entities"), "entities"):
        label = _label(label, "An entity label")
        spec = _spec(value, f"Entity {label!r}")
        _check_keys(spec, ("description", "examples", "class_name", "parent"), f"Entity {label!r}")
        entities.append(
            EntityType(
                label=label,
                class_name=_name(spec.get("class_name"), f"The class_name of entity {label!r}")
                or class_name_from_label(label),
                description=_text(spec.get("description"), f"The description of entity {label!r}"),
                examples=_strings(spec.get("examples"), f"The examples of entity {label!r}"),
                parent=_name(spec.get("parent"), f"The parent of entity {label!r}") or "",
            )
        )
    relations = []
    for label, value in _items(data.get("relations"), "relations"):
        label = _label(label, "A relation label")
        spec = _spec(value, f"Relation {label!r}")
        _check_keys(spec, ("head", "tail", "description", "examples", "class_name"), f"Relation {label!r}")
        examples = []
        pairs = spec.get("examples") or ()
        if not isinstance(pairs, (list, tuple)):
            raise SchemaError(f"The examples of relation {label!r} must be a list of [head, tail] pairs.")
        for pair in pairs:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise SchemaError(f"Each example of relation {label!r} must be a [head, tail] pair of strings.")
            examples.append((pair[0], pair[1]))
        relations.append(
            RelationType(
                label=label,
                class_name=_name(spec.get("class_name"), f"The class_name of relation {label!r}")
                or class_name_from_label(label),
                head=_as_tuple_of_labels(spec.get("head"), f"The head of relation {label!r}"),
                tail=_as_tuple_of_labels(spec.get("tail"), f"The tail of relation {label!r}"),
                description=_text(spec.get("description"), f"The description of relation {label!r}"),
                examples=tuple(examples),
            )
        )
    events = []
    for label, value in _items(data.get("events"), "events"):
        label = _label(label, "An event label")
        spec = _spec(value, f"Event {label!r}")
        _check_keys(spec, ("roles", "description", "examples", "class_name"), f"Event {label!r}")
        roles = []
        for role_name, role_value in _items(spec.get("roles"), f"roles of event {label!r}"):
            role_name = _label(role_name, f"A role of event {label!r}")
            if isinstance(role_value, Mapping):
                role_spec = dict(role_value)
                _check_keys(role_spec, ("types", "description", "parameter"), f"Role {role_name!r} of {label!r}")
            else:
                role_spec = {"types": role_value}
            roles.append(
                Role(
                    name=role_name,
                    parameter=_name(role_spec.get("parameter"), f"The parameter of role {role_name!r}")
                    or parameter_name_from_role(role_name),
                    types=_as_tuple_of_labels(role_spec.get("types"), f"The types of role {role_name!r}"),
                    description=_text(role_spec.get("description"), f"The description of role {role_name!r}"),
                )
            )
        events.append(
            EventType(
                label=label,
                class_name=_name(spec.get("class_name"), f"The class_name of event {label!r}")
                or class_name_from_label(label),
                roles=tuple(roles),
                description=_text(spec.get("description"), f"The description of event {label!r}"),
                examples=_strings(spec.get("examples"), f"The examples of event {label!r}"),
            )
        )
    return Schema.build(entities, relations, events)


@registry.misc("spacy_codeie.schema_from_dict.v1")
def schema_from_dict(
    entities: Optional[Union[Dict[str, Any], List[str]]] = None,
    relations: Optional[Dict[str, Any]] = None,
    events: Optional[Dict[str, Any]] = None,
) -> Schema:
    """Schema written inline in a config or in Python: labels mapped to descriptions or to dicts of fields."""
    return schema_from_mapping({"entities": entities, "relations": relations, "events": events})


@registry.misc("spacy_codeie.schema_from_json.v1")
def schema_from_json(path: Union[str, Path]) -> Schema:
    """Schema from a JSON file holding the dict form (as `Schema.to_dict` writes it) or a labels.json."""
    text = _read_text(path)
    where = f"The schema file {str(path)!r}"
    with _nesting(where):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SchemaError(f"{where} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{where} holds a JSON {_JSON_TYPES.get(type(data), type(data).__name__)}; a schema is a "
                          "JSON object with 'entities', 'relations' and/or 'events' (or a labels.json with "
                          "'entity', 'relation' and/or 'event').")
    if {"entity", "relation", "event"} & set(data):
        return schema_from_labels(data)
    return schema_from_mapping(data)


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _label_list(data: Mapping[str, Any], key: str, fields: Sequence[str]) -> List[Mapping[str, Any]]:
    """The items of one list of a labels.json, each an object with string `fields`."""
    items = data.get(key) or []
    if not isinstance(items, list):
        raise SchemaError(f"'{key}' in labels.json must be a list of objects, not {_show(items)}.")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise SchemaError(f"Item {i} of '{key}' in labels.json must be an object, not {_show(item)}.")
        for name in fields:
            if not isinstance(item.get(name), str) or not item[name].strip():
                raise SchemaError(f"Item {i} of '{key}' in labels.json needs a non-empty string '{name}', "
                                  f"has {_show(item.get(name))}.")
    return items


def schema_from_labels(data: Mapping[str, Any]) -> Schema:
    """Schema from a shared dataset's labels.json (lists under 'entity', 'relation' and 'event')."""

    def describe(item: Mapping[str, Any]) -> Any:
        return item.get("description") or item.get("verbose") or item.get("english") or ""

    with _nesting("labels.json"):
        entities = {e["label"]: {"description": describe(e)} for e in _label_list(data, "entity", ("label",))}
        relations = {
            r["label"]: {"description": describe(r), "head": r.get("head_type"), "tail": r.get("tail_type")}
            for r in _label_list(data, "relation", ("label",))
        }
        events = {}
        for ev in _label_list(data, "event", ("label",)):
            roles = _label_list(ev, "roles", ("role",))
            events[ev["label"]] = {"description": describe(ev),
                                   "roles": {role["role"]: {"description": role.get("description")} for role in roles}}
    return schema_from_mapping({"entities": entities, "relations": relations, "events": events})


# ---------------------------------------------------------------------------------------------
# Python-file schemas, read with ast
# ---------------------------------------------------------------------------------------------
def _parse_docstring(doc: Optional[str]) -> Tuple[str, List[str]]:
    """Split a KnowCoder-style docstring into its description and its comma-separated examples."""
    if not doc:
        return "", []
    description_lines: List[str] = []
    examples: List[str] = []
    in_examples = False
    for raw in doc.strip().splitlines():
        line = raw.strip()
        lowered = line.lower()
        if lowered.startswith("description:"):
            in_examples = False
            description_lines.append(line[len("description:"):].strip())
        elif lowered.startswith("examples:"):
            in_examples = True
            examples.extend(_split_examples(line[len("examples:"):]))
        elif in_examples:
            examples.extend(_split_examples(line))
        elif line:
            description_lines.append(line)
    return " ".join(d for d in description_lines if d), examples


def _split_examples(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _pair_examples(examples: List[str]) -> List[Tuple[str, str]]:
    """Relation examples are written '(head, tail), (head, tail)'; the comma split gives halves."""
    pairs = []
    halves = [e.strip("() ") for e in examples]
    for i in range(0, len(halves) - 1, 2):
        pairs.append((halves[i], halves[i + 1]))
    return pairs


def _type_names(node: Optional[ast.expr], where: str) -> Tuple[str, ...]:
    """Class names from an annotation: `Org`, `List[Org]`, `List[Union[Org, Person]]`, `List[Org | Person]`."""
    if node is None:
        return (ANY_ENTITY,)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a forward reference "Org"
        reference = node.value
        try:
            node = ast.parse(reference, mode="eval").body
        except SyntaxError:
            raise SchemaError(f"{where}: cannot read the annotation {reference!r}.") from None
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        inner = node.slice
        if node.value.id in ("List", "list", "Sequence"):
            return _type_names(inner, where)
        if node.value.id == "Union":
            elts = inner.elts if isinstance(inner, ast.Tuple) else [inner]
            return tuple(n for e in elts for n in _type_names(e, where))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _type_names(node.left, where) + _type_names(node.right, where)
    raise SchemaError(
        f"{where}: the annotation {_show(ast.unparse(node))} is not an entity class, List[...] of entity classes or "
        "a Union of them."
    )


def _class_fields(node: ast.ClassDef) -> Tuple[Dict[str, str], List[Tuple[str, Optional[ast.expr]]]]:
    """String class attributes (label = "...") and typed parameters (from annotations or __init__)."""
    attributes: Dict[str, str] = {}
    params: List[Tuple[str, Optional[ast.expr]]] = []
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            if isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                attributes[stmt.targets[0].id] = stmt.value.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            params.append((stmt.target.id, stmt.annotation))
        elif isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__" and not params:
            args = stmt.args.args[1:] + stmt.args.kwonlyargs
            params.extend((a.arg, a.annotation) for a in args)
    return attributes, params


@registry.misc("spacy_codeie.schema_from_file.v1")
def schema_from_file(path: Union[str, Path]) -> Schema:
    """Schema from a Python file of classes deriving from `Entity`, `Relation` and `Event`.

    The file is parsed, never imported or run. Docstrings give `Description:` and `Examples:`; relation
    `head`/`tail` and event roles are typed with entity classes; `label = "..."` sets the spaCy label.
    """
    path = Path(path)
    if path.suffix == ".json":
        return schema_from_json(path)
    source = _read_text(path)
    with _nesting(f"The schema file {str(path)!r}"):
        try:
            tree = ast.parse(source, filename=str(path))
        except SyntaxError as err:
            raise SchemaError(
                f"The schema file {str(path)!r} is not valid Python (line {err.lineno}): {err.msg}") from None
        except ValueError as err:  # e.g. a null byte
            raise SchemaError(f"The schema file {str(path)!r} is not Python source: {err}") from None
        return _schema_from_tree(tree, path)


def _schema_from_tree(tree: ast.Module, path: Path) -> Schema:
    kinds: Dict[str, str] = {}
    labels: Dict[str, str] = {}
    entities: List[EntityType] = []
    pending_relations = []
    pending_events = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        where = f"{path.name}, class {node.name} (line {node.lineno})"
        base_names = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", None) for b in node.bases]
        kind = next((BASES.get(b) or kinds.get(b) for b in base_names if b in BASES or b in kinds), None)
        if kind is None:
            raise SchemaError(
                f"{where} derives from none of Entity, Relation or Event. Make it a subclass of one of them "
                "(from spacy_codeie import Entity, Relation, Event)."
            )
        kinds[node.name] = kind
        attributes, params = _class_fields(node)
        label = attributes.get("label", node.name)
        labels[node.name] = label
        description, examples = _parse_docstring(ast.get_docstring(node))
        if kind == "entity":
            entities.append(EntityType(label, node.name, description, tuple(examples)))
        elif kind == "relation":
            pending_relations.append((node.name, label, description, examples, params, where))
        else:
            pending_events.append((node.name, label, description, examples, params, where))

    def to_entity_labels(names: Tuple[str, ...], where: str) -> Tuple[str, ...]:
        out = []
        for name in names:
            if name == ANY_ENTITY:
                out.append(ANY_ENTITY)
            elif kinds.get(name) == "entity":
                out.append(labels[name])
            else:
                raise SchemaError(
                    f"{where}: {name!r} is not an entity class of this file. Define `class {name}(Entity)` "
                    "above, or use `Entity` for any entity."
                )
        return tuple(out)

    relations = []
    for class_name, label, description, examples, params, where in pending_relations:
        named = dict(params)
        head = named.get("head", named.get("head_entity"))
        tail = named.get("tail", named.get("tail_entity"))
        if head is None and tail is None and len(params) == 2:
            head, tail = params[0][1], params[1][1]
        relations.append(
            RelationType(
                label=label,
                class_name=class_name,
                head=to_entity_labels(_type_names(head, where), where),
                tail=to_entity_labels(_type_names(tail, where), where),
                description=description,
                examples=tuple(_pair_examples(examples)),
            )
        )
    events = []
    for class_name, label, description, examples, params, where in pending_events:
        roles = tuple(
            Role(name=name, parameter=name, types=to_entity_labels(_type_names(annotation, where), where))
            for name, annotation in params
            if name != "trigger"
        )
        for role in roles:
            parameter_name_from_role(role.name)  # same checks as dict schemas
        events.append(EventType(label, class_name, roles, description, tuple(examples)))
    return Schema.build(entities, relations, events)
