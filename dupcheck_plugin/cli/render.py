"""`dupcheck render` (being written)."""


def register(sub) -> None:
    pass
