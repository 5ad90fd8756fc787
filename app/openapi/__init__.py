"""The OpenAPI document, made to tell the truth about every route.

- ``access``: how each route is authenticated (its ``security`` and an ``Access:`` line), from the
  route's access declaration;
- ``problems``: the problem answers the layers around each handler can give, strict bodies'
  ``additionalProperties: false``, and ``Allow`` on OPTIONS naming every method of a path.
"""

from app.openapi.access import components, describe_access
from app.openapi.problems import StrictStructSchemaPlugin, allow_header_hook, document_problems

__all__ = ["StrictStructSchemaPlugin", "allow_header_hook", "components", "describe_access", "document_problems"]
