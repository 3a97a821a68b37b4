"""The patch formats of the Kubernetes API: JSON patch, JSON merge patch and strategic merge patch."""

from __future__ import annotations

from typing import Any

from clickhouse_privatelink_testkit.standins.kubernetes.errors import ApiError, bad_request


def clone(value: Any) -> Any:
    """Deep copy of JSON data (much faster than ``copy.deepcopy`` for plain dicts and lists)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


class JsonPatchTestFailed(Exception):
    """A ``test`` operation of a JSON patch did not hold."""


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    return [_unescape(t) for t in path[1:].split("/")]


def _resolve(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for t in tokens:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise ApiError(422, "Invalid", f"jsonpatch: path {path!r} does not exist")
    return cur


def _list_index(container: list[Any], token: str, path: str, *, for_insert: bool) -> int:
    if token == "-" and for_insert:
        return len(container)
    if not token.isdigit():
        raise ApiError(422, "Invalid", f"jsonpatch: invalid array index {token!r} in {path!r}")
    index = int(token)
    limit = len(container) if for_insert else len(container) - 1
    if index > limit:
        raise ApiError(422, "Invalid", f"jsonpatch: array index {index} out of bounds in {path!r}")
    return index


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, path, for_insert=True), value)
    else:
        raise ApiError(422, "Invalid", f"jsonpatch: cannot add at {path!r}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise ApiError(422, "Invalid", "jsonpatch: cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise ApiError(422, "Invalid", f"jsonpatch: remove of missing path {path!r}")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(parent, last, path, for_insert=False))
    raise ApiError(422, "Invalid", f"jsonpatch: cannot remove at {path!r}")


def _replace(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], path)
    _resolve(parent, tokens[-1:], path)  # the target must exist
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent[int(tokens[-1])] = value
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    # JSON has no bool/int identity: True must not equal 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch to a copy of ``doc``."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = clone(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, clone(op.get("value")))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            doc = _replace(doc, path, clone(op.get("value")))
        elif kind in ("move", "copy"):
            source = op.get("from", "")
            value = clone(_resolve(doc, _pointer(source), source))
            if kind == "move":
                doc, _ = _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "test":
            tokens = _pointer(path)
            try:
                actual = _resolve(doc, tokens, path)
            except ApiError:
                actual = None
            if not _json_equal(actual, op.get("value")):
                raise JsonPatchTestFailed(f"testing value {path} failed: test failed")
        else:
            raise bad_request(f"unexpected kind of JSON patch operation: {kind!r}")
    return doc


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch, returning a new value."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Strategic merge patch: kube-apiserver merges lists by the per-field ``patchMergeKey`` of the Go
# types. The built-in kinds served here (Secret, ConfigMap, Namespace, Event, Lease) have no such
# lists except ``Namespace.spec.finalizers`` (a primitive list, replaced). So this approximation
# is a merge patch that honours the SMP directives kubectl emits, and merges lists of objects
# having a ``name`` (the merge key of containers, env, ports, volumes...) by that name.
_DIRECTIVE_PREFIXES = ("$setElementOrder/", "$deleteFromPrimitiveList/", "$retainKeys")


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch (see the approximation note above)."""
    if not isinstance(patch, dict):
        return clone(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    result = clone(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key == "$patch" or key.startswith(_DIRECTIVE_PREFIXES):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value)
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list):
                result[name] = [v for v in result[name] if v not in value]
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(current: list[Any], patch: list[Any]) -> list[Any]:
    keyed = bool(patch) and all(isinstance(v, dict) and "name" in v for v in current + patch)
    if not keyed:
        return [clone(v) for v in patch if not (isinstance(v, dict) and v.get("$patch") == "replace")]
    by_name = {v["name"]: i for i, v in enumerate(current)}
    result = [clone(v) for v in current]
    for item in patch:
        index = by_name.get(item["name"])
        if item.get("$patch") == "delete":
            if index is not None:
                result[index] = None
        elif index is None:
            result.append(strategic_merge_patch(None, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return [v for v in result if v is not None]
