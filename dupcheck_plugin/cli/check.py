"""`dupcheck check` (being written)."""


def register(sub) -> None:
    pass
