"""The PATCH feature: an update mask derived from the JSON body when the client sends none.

grpc-gateway's generated handler (protoc-gen-grpc-gateway's template, `AllowPatchFeature`, on by
default) does this for a PATCH route whose body is one field (not "*") of a request holding exactly
one google.protobuf.FieldMask field: if that mask is still empty after the query, it is filled by
runtime.FieldMaskFromRequestBody with every complete path present in the body, relative to the body
message, in proto names, sorted. Lists and maps end a path; Struct and Value are walked blindly; an
Any needs its "@type". An unknown JSON key is an error (INVALID_ARGUMENT).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from wsproxy.gateway._fields import FieldError, find_field

_DYNAMIC = frozenset({"google.protobuf.Struct", "google.protobuf.Value"})


def patch_mask_field(request_descriptor: Any) -> FieldDescriptor | None:
    """The request's only FieldMask field, or None when it has none or several."""
    masks = [
        field
        for field in request_descriptor.fields
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.FieldMask"
    ]
    return masks[0] if len(masks) == 1 else None


def _blind_paths(name: str, value: Any) -> list[str]:
    """buildPathsBlindly: the key structure of a Struct/Value, without a schema."""
    if not isinstance(value, dict):
        return [name]
    paths: list[str] = []
    queue = [(name, value)]
    while queue:
        prefix, node = queue.pop(0)
        for key, child in node.items():
            if isinstance(child, dict):
                queue.append((f"{prefix}.{key}", child))
            else:
                paths.append(f"{prefix}.{key}")
    return paths


def paths_from_body(body: Any, descriptor: Any) -> list[str]:
    """runtime.FieldMaskFromRequestBody, on an already decoded JSON body."""
    paths: list[str] = []
    queue: list[tuple[str, Any, Any]] = [("", body, descriptor)]
    while queue:
        path, node, message = queue.pop(0)
        if isinstance(node, dict) and node:
            for key, value in node.items():
                if message is None:
                    raise FieldError("JSON structure did not match request type")
                field = find_field(message, key)
                if field is None:
                    raise FieldError(f"could not find field {key!r} in {message.full_name!r}")
                child_path = f"{path}.{field.name}" if path else field.name
                nested = field.message_type
                is_map = nested is not None and nested.GetOptions().map_entry
                if nested is not None and nested.full_name in _DYNAMIC:
                    queue.extend((blind, None, None) for blind in _blind_paths(child_path, value))
                elif (
                    nested is not None and nested.full_name == "google.protobuf.Any" and not field.is_repeated
                ):
                    if not isinstance(value, dict) or "@type" not in value:
                        raise FieldError(
                            f"could not find field @type in {key!r} in message {message.full_name!r}"
                        )
                    queue.append((child_path, None, None))
                elif field.is_repeated or is_map:
                    paths.append(child_path)  # do not recurse into repeated fields (field_mask.proto)
                else:
                    queue.append((child_path, value, nested))
        elif path:  # a leaf, or an empty object (grpc-gateway also lists "" for a bare `{}`)
            paths.append(path)
    return sorted(paths)


def fill_patch_mask(request: Message, mask_field: FieldDescriptor, body_field: str, body: Any) -> None:
    """Set the request's update mask from the body when the client gave no paths."""
    mask = getattr(request, mask_field.name)
    if mask.paths:
        return
    holder: Any = request.DESCRIPTOR
    for name in body_field.split("."):
        field = find_field(holder, name)
        holder = field.message_type if field is not None else None
    mask.paths.extend(paths_from_body(body, holder) if body is not None else [])
