"""The rules table: find a key in the CRM's answer, compare, decide (pure, no I/O)."""
