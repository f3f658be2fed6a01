"""The visitor's country from their address, when an operator configures a MaxMind-format database
(GEOIP_DATABASE, e.g. GeoLite2-Country.mmdb): the two-letter ISO code only; the address is not kept."""
from __future__ import annotations

import re

import maxminddb

_ISO_CODE = re.compile(r"^[A-Z]{2}$")


class Countries:
    """Looks addresses up in the database at `path`; without a path every answer is None."""

    def __init__(self, path: str = ""):
        self._reader = maxminddb.open_database(path) if path else None

    def country(self, address: str | None) -> str | None:
        if self._reader is None or not address:
            return None
        try:
            record = self._reader.get(address)
        except ValueError:  # not an IP address
            return None
        country = record.get("country") if isinstance(record, dict) else None
        code = country.get("iso_code") if isinstance(country, dict) else None
        return code if isinstance(code, str) and _ISO_CODE.match(code) else None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
