"""Reads an iCalendar feed on stdin with the `icalendar` package (not our writer's code)
and prints what the tests check, as JSON: the calendar's properties and, per event, its
UID, dates (and their value types), summary, URL, TRANSP and the alarms' triggers.

Strict: a line longer than 75 octets, a bare LF, or anything icalendar cannot parse fails
the run with a message on stderr (exit 1).
"""

import json
import sys

from icalendar import Calendar

raw = sys.stdin.buffer.read()
problems = []
for n, line in enumerate(raw.split(b"\r\n"), 1):
    if len(line) > 75:
        problems.append(f"line {n} is {len(line)} octets long")
    if b"\n" in line or b"\r" in line:
        problems.append(f"line {n} has a bare CR or LF")
if not raw.endswith(b"\r\n"):
    problems.append("the feed does not end with CRLF")
if problems:
    sys.exit("\n".join(problems))

cal = Calendar.from_ical(raw.decode("utf-8"))
if cal.errors:
    sys.exit(f"parse errors: {cal.errors}")


def value_type(prop):
    return prop.params.get("VALUE", "DATE-TIME")


out = {
    "version": str(cal.get("VERSION")),
    "prodid": str(cal.get("PRODID")),
    "name": str(cal.get("X-WR-CALNAME")),
    "timezone": str(cal.get("X-WR-TIMEZONE")),
    "refresh": cal.get("REFRESH-INTERVAL").to_ical().decode(),
    "ttl": str(cal.get("X-PUBLISHED-TTL")),
    "events": [],
}
for ev in cal.walk("VEVENT"):
    if ev.errors:
        sys.exit(f"event errors: {ev.errors}")
    start, end = ev.get("DTSTART"), ev.get("DTEND")
    out["events"].append(
        {
            "uid": str(ev.get("UID")),
            "start": start.dt.isoformat(),
            "start_type": value_type(start),
            "end": end.dt.isoformat(),
            "end_type": value_type(end),
            "summary": str(ev.get("SUMMARY")),
            "description": str(ev.get("DESCRIPTION")),
            "url": str(ev.get("URL")),
            "transp": str(ev.get("TRANSP")),
            "stamp": ev.get("DTSTAMP").dt.isoformat(),
            "alarms": [
                {
                    "action": str(a.get("ACTION")),
                    "trigger": a.get("TRIGGER").dt.isoformat(),
                }
                for a in ev.walk("VALARM")
            ],
        }
    )
json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
