"""Request input checks shared by every route: media type, JSON depth, NUL characters.

Every refusal is an ``ApiError`` (4xx JSON naming the field), never a 500 and never a 503:
* a write whose ``Content-Type`` is missing or not JSON is 415 ``unsupported_media_type``;
* a body that is not JSON, or nested deeper than ``MAX_DEPTH`` levels, is 400 ``bad_request``
  (Python's parser would otherwise raise ``RecursionError`` on very deep input);
* a NUL character (``\\u0000``) or an unpaired surrogate (``\\ud800``) in any string or object key of the
  body, a path parameter or a query parameter is 422 ``invalid_character`` naming it: PostgreSQL
  cannot store NUL in text or jsonb, and a lone surrogate is not UTF-8.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from aiohttp import web
from pydantic import BeforeValidator, Field, StrictInt

from fortress.http.errors import ApiError, bad_request

MAX_DEPTH: Final = 128
NUL: Final = "\x00"


def unsupported_media_type(found: str | None) -> ApiError:
    shown = repr(found) if found else "none"
    return ApiError(
        415,
        "unsupported_media_type",
        f"request body must be sent with Content-Type: application/json (got {shown})",
        [{"field": "Content-Type", "message": "expected application/json"}],
    )


def invalid_character(field: str, what: str = "a NUL character (\\u0000)") -> ApiError:
    return ApiError(
        422,
        "invalid_character",
        f"{field} contains {what}, which cannot be stored",
        [{"field": field, "message": f"must not contain {what}"}],
    )


def _check_text(text: str, field: str) -> None:
    if NUL in text:
        raise invalid_character(field)
    try:
        text.encode()
    except UnicodeEncodeError:  # JSON allows "\\ud800" alone; UTF-8 (and PostgreSQL) does not
        raise invalid_character(field, "an unpaired surrogate") from None


def require_json(request: web.Request) -> None:
    """415 unless the request declares a JSON body (``application/json``, parameters allowed)."""
    header = request.headers.get("Content-Type")
    if header is None:
        raise unsupported_media_type(None)
    media = request.content_type.lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise unsupported_media_type(header)


def _join(path: str, part: str | int) -> str:
    return f"{path}.{part}" if path else str(part)


def check_tree(value: Any) -> None:
    """400 when ``value`` nests deeper than MAX_DEPTH, 422 naming the first string holding NUL."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, path or "<body>")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise bad_request(
                f"request body is nested deeper than {MAX_DEPTH} levels",
                [{"field": path or "<body>", "message": f"nested deeper than {MAX_DEPTH} levels"}],
            )
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, _join(path, _shown(key)))
                stack.append((child, _join(path, key), depth + 1))
        else:
            stack.extend((child, _join(path, index), depth + 1) for index, child in enumerate(item))


def _shown(name: str) -> str:
    return name.replace(NUL, "\\u0000").encode(errors="backslashreplace").decode()


def decode_json(raw: bytes) -> Any:
    """The JSON document in ``raw`` (empty: null), checked by ``check_tree``."""
    try:
        data = json.loads(raw or b"null")
    except RecursionError:
        raise bad_request(
            f"request body is nested deeper than {MAX_DEPTH} levels",
            [{"field": "<body>", "message": f"nested deeper than {MAX_DEPTH} levels"}],
        ) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise bad_request(f"request body is not valid JSON: {error}") from None
    check_tree(data)
    return data


def check_parameters(request: web.Request) -> None:
    """422 naming the first path or query parameter that holds a NUL character."""
    for name, value in request.match_info.items():
        _check_text(value, name)
    for name, value in request.query.items():
        _check_text(name + value, _shown(name))


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer as JSON Schema defines it: 5 and 5.0 (a number without fraction) are, "5" and true are not.
JsonInt = Annotated[StrictInt, BeforeValidator(_integral)]


def json_int(ge: int | None = None, le: int | None = None) -> Any:
    """``JsonInt`` with ``ge``/``le`` inside the type, as an optional field needs them to appear in
    the JSON schema as ``minimum``/``maximum`` (``Field(ge=...)`` on ``JsonInt | None`` does not)."""
    return Annotated[StrictInt, Field(ge=ge, le=le), BeforeValidator(_integral)]
