"""Offset pagination parameters shared by list endpoints."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

Limit = Annotated[int, Parameter(ge=1, le=500, description="page size")]
Offset = Annotated[int, Parameter(ge=0, description="rows to skip")]
DEFAULT_LIMIT = 50
