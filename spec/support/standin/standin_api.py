"""The stand-in's footprint routes (standin.py), what README's examples call.

The real Ducky API's footprint resources are not described anywhere we can
read; these routes give the examples (README's first example and its batch
example, examples/request.lua and examples/batch.lua) something plausible to
talk to.  Like every API route but /v3/ping they need a valid bearer token
(standin.py checks it before calling in here).

  GET  /v3/footprints?site=S&year=Y&limit=N
       200 {"footprints": [item, ...], "count": n, "total": matches}
       items of the fixed data set (the sites below x 2024-2026) and those
       POSTed since the last reset, filtered by site (exact, case-insensitive)
       and year, sorted by site then year, at most `limit` (1..100, default 50);
       other query parameters are ignored.  A year that is not an integer
       1900..2100 or a bad limit: 400 invalid_request.
  GET  /v3/footprints/<id>   200 item, or 404 not_found
  POST /v3/footprints        a JSON object: 201 {"id": "fp-<n>", <the fields
       sent>, "created": true}, Location: /v3/footprints/<id>; the item joins
       the list.  Not an object, or a site that is not a string or a year that
       is not an integer: 400 invalid_request.
  any other method           405, Allow: GET, HEAD, POST (GET, HEAD on an item)

An item: {"id": "fp-berlin-2026", "site": "berlin", "year": 2026,
"co2e_kg": 41214.0, "scope": "site"}.
"""

import json
import re
import threading

SITES = {  # site -> tonnes of CO2e in 2024; each later year 4 % less
    "berlin": 44.72, "lyon": 31.06, "oslo": 12.88, "porto": 27.4,
    "turin": 35.15, "ghent": 19.93, "graz": 16.31, "bergen": 9.57,
}
YEARS = (2024, 2025, 2026)


def fixed_items():
    out = []
    for site, tonnes in SITES.items():
        for i, year in enumerate(YEARS):
            out.append({"id": "fp-%s-%d" % (site, year), "site": site, "year": year,
                        "co2e_kg": round(tonnes * 1000 * 0.96 ** i, 1), "scope": "site"})
    return out


ERRORS = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}


def error(status, desc, headers=None):
    return status, {"error": ERRORS[status], "error_description": desc}, headers or []


def int_arg(args, name, low, high):
    """-> (value or None, error description or None)"""
    if name not in args:
        return None, None
    v = args[name][0]
    if not re.fullmatch(r"[0-9]{1,9}", v) or not low <= int(v) <= high:
        return None, "%s must be an integer %d..%d, not %r" % (name, low, high, v)
    return int(v), None


class Footprints:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.created = []
            self.counter = 0

    def items(self):
        with self.lock:
            return fixed_items() + [dict(i) for i in self.created]

    def route(self, method, path, args, body):
        """-> (status, JSON-able object, [(header, value)])"""
        rest = path[len("/v3/footprints"):]
        if rest in ("", "/"):
            if method in ("GET", "HEAD"):
                return self.list(args)
            if method == "POST":
                return self.create(body)
            return error(405, "Use GET or POST", [("Allow", "GET, HEAD, POST")])
        if method not in ("GET", "HEAD"):
            return error(405, "Use GET", [("Allow", "GET, HEAD")])
        for item in self.items():
            if item["id"] == rest[1:]:
                return 200, item, []
        return error(404, "No footprint %s" % rest[1:])

    def list(self, args):
        year, err = int_arg(args, "year", 1900, 2100)
        limit, err2 = int_arg(args, "limit", 1, 100)
        if err or err2:
            return error(400, err or err2)
        site = args.get("site", [None])[0]
        found = [i for i in self.items()
                 if (year is None or i.get("year") == year)
                 and (site is None or str(i.get("site", "")).lower() == site.lower())]
        found.sort(key=lambda i: (str(i.get("site", "")), i.get("year") or 0, i["id"]))
        shown = found[:limit or 50]
        return 200, {"footprints": shown, "count": len(shown), "total": len(found)}, []

    def create(self, body):
        try:
            item = json.loads(body.decode("utf-8")) if body else None
        except ValueError as e:
            return error(400, "Invalid JSON body: %s" % e)
        if not isinstance(item, dict):
            return error(400, "A footprint is a JSON object")
        if "site" in item and not isinstance(item["site"], str):
            return error(400, "site must be a string")
        year = item.get("year")
        if "year" in item and (not isinstance(year, int) or isinstance(year, bool)):
            return error(400, "year must be an integer")
        with self.lock:
            self.counter += 1
            item = dict(item, id="fp-%d" % self.counter, created=True)
            self.created.append(item)
        return 201, item, [("Location", "/v3/footprints/" + item["id"])]
