"""The control room's aggregates: the boards and charts behind ``/control`` (``/api/dashboard/...``)."""
