"""A secret's name where a config wants one, and the credential itself where
it was written instead: a connection's ``auth`` names environment variables
(``secret = "HUBSPOT_TOKEN"``), and pasting the token there is a common slip.
What ``check`` says of such a value never quotes it: it may be live."""

from __future__ import annotations

import re

# what a secret's name may be (the schemas' secret_name): an environment variable's name
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# how common credentials start: Stripe's keys, HubSpot's and GitHub's tokens, Slack's, a JWT, an AWS
# key id, Zoho's "1000." tokens, and a header's value pasted with its scheme
_CREDENTIAL_START = re.compile(r"(?:[spr]k_(?:live|test)_|pat-|gh[pousr]_[A-Za-z0-9]{20}|github_pat_|xox[abporse]-"
                               r"|eyJ|AKIA[0-9A-Z]{16}$|1000\.|(?:Bearer|Basic) )")
_LETTER_DIGIT = re.compile(r"(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")


def looks_like_credential(text: str) -> bool:
    """Whether ``text``, written where a secret's name goes, is more likely the
    credential itself: it starts as common tokens do, or it is long, has lower
    case (names are upper case by custom) and alternates letters and digits as
    random text does (``HUBSPOT_TOKEN_2024`` changes once; ``9f86d08188...`` at
    nearly every character). A false alarm is a problem ``check`` fails on, so
    both tests are narrow: what they miss still gets "not set in this
    environment"."""
    if _CREDENTIAL_START.match(text):
        return True
    return len(text) >= 20 and text != text.upper() and len(_LETTER_DIGIT.findall(text)) >= 6


def not_a_name(key: str, credential: bool) -> str:
    """What to say of an auth ``key`` whose value is not a secret's name (the value is not quoted)."""
    if credential:
        return (f"{key} looks like the credential itself, not the name of the environment variable that holds "
                "it: written here it is committed with the file. Put it in an environment variable (or a "
                f"NAME_FILE file) and write that variable's name here ({key} = \"HUBSPOT_TOKEN\", say); if this "
                "file is in version control, rotate the credential")
    return (f"{key} is not an environment variable's name (letters, digits and _, not starting with a digit): "
            f"write the name of the variable that holds the credential ({key} = \"HUBSPOT_TOKEN\", say)")
