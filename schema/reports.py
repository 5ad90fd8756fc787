"""Tables of the report framework (issue 20): export jobs and scheduled-report subscriptions."""

from __future__ import annotations

from piccolo.columns import JSON, UUID, Date, ForeignKey, Integer, OnDelete, Timestamptz, Varchar
from piccolo.table import Table

from schema.tables import Person, Site


class ReportExport(Table, tablename="report_export"):
    """A report file built by a worker (``report_export``); its signed link expires, then the file is deleted."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    report = Varchar(length=64)
    format = Varchar(length=8)  # csv | xlsx
    params = JSON(default="{}")  # the filters and ``by``, as asked
    status = Varchar(length=16, default="pending")  # pending | running | ready | failed | expired
    rows = Integer(default=0)
    size_bytes = Integer(default=0)
    file_key = Varchar(length=255, null=True, default=None)
    error = Varchar(length=200, null=True, default=None)
    created_at = Timestamptz()
    completed_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz(null=True, default=None, index=True)


class ReportSubscription(Table, tablename="report_subscription"):
    """An FM admin's standing order: the report, summarised, e-mailed weekly or monthly as an attachment."""

    id = UUID(primary_key=True)
    site = ForeignKey(references=Site, on_delete=OnDelete.cascade, null=False, index=True)
    person = ForeignKey(references=Person, on_delete=OnDelete.cascade, null=False, index=True)
    report = Varchar(length=64)
    frequency = Varchar(length=8)  # weekly | monthly
    format = Varchar(length=8, default="xlsx")
    by = Varchar(length=64, null=True, default=None)  # the summary sent; None: the detail rows
    last_period_end = Date(null=True, default=None)  # the last period sent (its last day)
    created_at = Timestamptz()
