"""Billing periods: calendar months in UTC ("2026-11"), and pro rata days."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from metering.billing.errors import InvalidField

_PERIOD = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, order=True)
class Period:
    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def last_day(self) -> dt.date:
        return dt.date(self.year, self.month, self.days)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        """The first instant after the period (the next period's start)."""
        return self.next().start

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def contains(self, day: dt.date) -> bool:
        return (day.year, day.month) == (self.year, self.month)

    def days_from(self, day: dt.date) -> int:
        """Days billed from `day` (included) to the period's end (included)."""
        return (self.last_day - day).days + 1


def period_of(moment: dt.datetime | dt.date) -> Period:
    if isinstance(moment, dt.datetime):
        moment = utc(moment).date()
    return Period(moment.year, moment.month)


def from_date(day: dt.date) -> Period:
    return Period(day.year, day.month)


def parse_period(value: Any, field: str = "period") -> Period:
    if not isinstance(value, str) or (match := _PERIOD.match(value)) is None:
        raise InvalidField(field, "must be a period YYYY-MM")
    year = int(match.group(1))
    if not 2000 <= year <= 2999:  # year 0 has no dates; 9999-12 has no next period
        raise InvalidField(field, "must be a period from 2000-01 to 2999-12")
    return Period(year, int(match.group(2)))


def utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("times must carry a time zone")
    return moment.astimezone(dt.UTC)
