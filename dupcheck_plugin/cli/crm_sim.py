"""`dupcheck crm-sim` (being written)."""


def register(sub) -> None:
    pass
