"""`dupcheck run` (being written)."""


def register(sub) -> None:
    pass
