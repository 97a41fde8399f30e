#!/usr/bin/env python3
"""Oracle: the PATCH engine of PyPI's scim2-models (pinned in requirements.txt).

A long-running process for tests/patch/main.rs: reads one JSON case a line on
stdin,

    {"id": ..., "resource": {...}, "request": {PatchOp message}, "resource_type": "User"|"Group"}

and writes one JSON line a case on stdout, in the order read:

    {"id": ..., "ok": true, "result": {...}}
    {"id": ..., "ok": false, "error": "<scimType>" | "resource: ..." | "crash: ...", "detail": "..."}

How scim2-models is driven, as its server-side documentation and
scim2_models/messages/patch_op.py describe:

1. the stored resource is read with ``Model.model_validate(resource)`` (no SCIM
   context: a stored representation, read-only attributes included), Model being
   ``User[EnterpriseUser]`` or ``Group``;
2. the request is read as a server reads a PATCH body:
   ``PatchOp[Model].model_validate(request, scim_ctx=Context.RESOURCE_PATCH_REQUEST)``.
   That context is what makes it check read-only targets, required attributes,
   a remove without path, an add without value;
3. ``patch_op.patch(resource)`` applies the operations in place, atomically,
   under the default ``ScimPolicy()``: the strict reading of the RFCs
   (unknown attributes refused, a remove carrying a value refused, an unmatched
   valuePath filter refused with noTarget);
4. the result is serialised with ``model_dump(scim_ctx=Context.DEFAULT)``:
   every attribute the resource holds (no ``returned`` filtering, so the dump is
   the stored state, not a response), attribute names in their schema spelling
   (camelCase aliases, extension under its URN), unassigned attributes left
   out. Dates come back as the ISO strings they were read from.

Errors: a ``SCIMException`` gives its ``scim_type``; a pydantic
``ValidationError`` is mapped by scim2-models' own
``Error.from_validation_errors`` (SCIM errors keep their scimType, others get
invalidSyntax or invalidValue as RFC 7644 §3.12 suggests). A resource the
models cannot read is reported as ``resource: ...`` (a generator bug, not an
engine answer). Anything else is ``crash: ...``. Nothing a case holds ends
this loop.
"""

import json
import sys
import traceback

from pydantic import ValidationError
from scim2_models import Context
from scim2_models import EnterpriseUser
from scim2_models import Error
from scim2_models import Group
from scim2_models import PatchOp
from scim2_models import SCIMException
from scim2_models import User

MODELS = {
    "User": User[EnterpriseUser],
    "Group": Group,
}
PATCH_MODELS = {name: PatchOp[model] for name, model in MODELS.items()}


def scim_type_of(exc):
    if isinstance(exc, SCIMException):
        return exc.scim_type or f"status {exc.status}"
    if isinstance(exc, ValidationError):
        errors = Error.from_validation_errors(exc)
        if errors:
            return errors[0].scim_type or f"status {errors[0].status}"
    return None


def apply_case(case):
    resource_type = case.get("resource_type", "User")
    model = MODELS[resource_type]
    try:
        resource = model.model_validate(case["resource"])
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "error": f"resource: {type(exc).__name__}", "detail": str(exc)}
    try:
        patch = PATCH_MODELS[resource_type].model_validate(
            case["request"], scim_ctx=Context.RESOURCE_PATCH_REQUEST
        )
        patch.patch(resource)
    except (SCIMException, ValidationError) as exc:
        return {"ok": False, "error": scim_type_of(exc), "detail": str(exc)}
    result = resource.model_dump(scim_ctx=Context.DEFAULT)
    return {"ok": True, "result": result}


def answer(line):
    try:
        case = json.loads(line)
    except Exception as exc:  # noqa: BLE001
        return {"id": None, "ok": False, "error": "crash: unreadable case line", "detail": str(exc)}
    try:
        out = apply_case(case)
    except Exception as exc:  # noqa: BLE001 - a crash is an answer too
        out = {
            "ok": False,
            "error": f"crash: {type(exc).__name__}",
            "detail": "".join(traceback.format_exception_only(exc)).strip(),
        }
    return {"id": case.get("id"), **out}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        out = answer(line)
        try:
            text = json.dumps(out, default=str, ensure_ascii=False)
        except Exception as exc:  # noqa: BLE001
            text = json.dumps(
                {"id": out.get("id"), "ok": False, "error": "crash: unserialisable answer", "detail": str(exc)}
            )
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
