"""`dupcheck serve` (being written)."""


def register(sub) -> None:
    pass
