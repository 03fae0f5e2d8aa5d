"""`dupcheck explain` (being written)."""


def register(sub) -> None:
    pass
