"""Staff attendance: staff, shifts and rosters, check-in and out, late and absent alerts, the monthly sheet.

See docs/attendance.md.
"""
