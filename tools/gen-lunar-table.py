#!/usr/bin/env python3
"""Generate the reference table of Vietnamese Tết and Giỗ Tổ dates, 1900-2100.

The Rust module src/calendar/lunar.rs computes the Vietnamese lunisolar
calendar itself; this script produces an independent table, from packages on
PyPI, that its unit tests compare against (tests/data/lunar-vn-1900-2100.tsv).

Source of the table: the PyPI package `lunar-vn` (made with version 1.4.0),
which converts lunar dates for a given time zone; it is asked for UTC+7, the
meridian of the Vietnamese calendar, for every year (also before 1968, when
Vietnam in fact still followed the UTC+8 Chinese calendar: the Rust code, like
this table, computes one rule for the whole range).

Cross-checks, written into the output's header comments:
  * `holidays` (made with 0.109): its VIETNAMESE_CALENDAR lunar new year and
    Hung Kings dates, a hand-maintained table for 1901-2100 - the most
    independent of the sources;
  * `vnlunar` (made with 1.0.5) forced to UTC+7 (its astronomical mode);
  * `vnlunar` in its default mode, which looks dates up in Hồ Ngọc Đức's
    published TK19-TK22 tables. Those follow the calendar actually in use,
    UTC+8 before 1968, so some pre-1968 years differ by design.
A disagreement is listed but does not change the table.

Rerun (from the repository root):
    python3 -m venv .venv
    .venv/bin/pip install lunar-vn==1.4.0 holidays==0.109 vnlunar==1.0.5
    .venv/bin/python tools/gen-lunar-table.py > tests/data/lunar-vn-1900-2100.tsv
or plain `python3 tools/gen-lunar-table.py > ...` where those packages are
installed. Only the "generated" line changes between runs with the same
package versions.
"""

import datetime as dt
import sys
from importlib.metadata import PackageNotFoundError, version

FIRST_YEAR, LAST_YEAR = 1900, 2100
VIETNAM_TZ = 7.0

try:
    import lunar_vn
except ImportError:
    sys.exit(
        "gen-lunar-table.py needs the PyPI package lunar-vn "
        "(pip install lunar-vn==1.4.0); see the header of this script"
    )


def pkg_version(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def reference(year):
    """(Tết, Giỗ Tổ) for `year` from lunar-vn at UTC+7."""
    tet = lunar_vn.convert_lunar_to_solar(1, 1, year, 0, VIETNAM_TZ)
    gio_to = lunar_vn.convert_lunar_to_solar(10, 3, year, 0, VIETNAM_TZ)
    return tet, gio_to


def holidays_dates(year):
    from holidays.calendars.chinese import VIETNAMESE_CALENDAR, _ChineseLunisolar

    cal = _ChineseLunisolar(VIETNAMESE_CALENDAR)
    return cal.lunar_new_year_date(year)[0], cal.hung_kings_date(year)[0]


def vnlunar_dates(year, tz):
    from vnlunar import core

    def one(day, month):
        r = core.convert_lunar_to_solar(day, month, year, 0, tz)
        return None if r is None else dt.date(r[2], r[1], r[0])

    return one(1, 1), one(10, 3)


CROSS_CHECKS = [
    ("holidays", "holidays VIETNAMESE_CALENDAR", holidays_dates),
    ("vnlunar", "vnlunar UTC+7 (astronomical)", lambda y: vnlunar_dates(y, VIETNAM_TZ)),
    ("vnlunar", "vnlunar default (HND tables, UTC+8 before 1968)", lambda y: vnlunar_dates(y, None)),
]


def main():
    rows = [(y, *reference(y)) for y in range(FIRST_YEAR, LAST_YEAR + 1)]
    out = sys.stdout
    out.write("# Vietnamese lunisolar calendar reference table, UTC+7, %d-%d\n" % (FIRST_YEAR, LAST_YEAR))
    out.write("# source: PyPI lunar-vn %s (convert_lunar_to_solar, time_zone=7.0)\n" % pkg_version("lunar-vn"))
    out.write("# generated: %s by tools/gen-lunar-table.py\n" % dt.date.today().isoformat())
    out.write("# tet = 1/1 lunar (mung 1 thang Gieng); gio_to = 10/3 lunar, non-leap month 3\n")
    for pkg, label, fn in CROSS_CHECKS:
        ver = pkg_version(pkg)
        if ver is None:
            out.write("# cross-check %s: not installed, skipped\n" % label)
            continue
        compared, diffs = 0, []
        for year, tet, gio_to in rows:
            try:
                other = fn(year)
            except (KeyError, ValueError):
                other = (None, None)
            for name, ours, theirs in (("tet", tet, other[0]), ("gio_to", gio_to, other[1])):
                if theirs is None:
                    continue
                compared += 1
                if theirs != ours:
                    diffs.append("%d %s %s" % (year, name, theirs.isoformat()))
        out.write(
            "# cross-check %s %s: %d dates compared, %d differ%s\n"
            % (label, ver, compared, len(diffs), (": " + ", ".join(diffs)) if diffs else "")
        )
    out.write("year\ttet\tgio_to\n")
    for year, tet, gio_to in rows:
        out.write("%d\t%s\t%s\n" % (year, tet.isoformat(), gio_to.isoformat()))


if __name__ == "__main__":
    main()
