"""The ontology: types, loaders and validation."""
from .bases import Entity, Event, Relation
from .loaders import schema_from_dict, schema_from_file, schema_from_json, schema_from_mapping
from .types import ANY_ENTITY, EntityType, EventType, RelationType, Role, Schema

__all__ = [
    "ANY_ENTITY",
    "Entity",
    "EntityType",
    "Event",
    "EventType",
    "Relation",
    "RelationType",
    "Role",
    "Schema",
    "schema_from_dict",
    "schema_from_file",
    "schema_from_json",
    "schema_from_mapping",
]
