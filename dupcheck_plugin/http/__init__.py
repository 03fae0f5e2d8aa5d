"""Talking to the CRM: the httpx client, the call with retries, parsing the answer."""
