"""The lead fields Convoso's lead insert names (reference: its help center).
An account's layout may add custom fields of any name, so a name outside
these is no mistake by itself; one a typo away from them likely is."""

from __future__ import annotations

REQUIRED = ("phone_number", "list_id")
OPTIONAL = ("phone_code", "status", "first_name", "last_name", "email", "alt_phone_1", "alt_phone_2",
            "address1", "address2", "city", "state", "province", "postal_code", "country", "gender",
            "date_of_birth", "owner_id", "created_by", "notes")
LEAD_FIELDS = REQUIRED + OPTIONAL
