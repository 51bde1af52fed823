"""The associated data that binds each sealed value to its record (store/crypto.py): one
spelling per kind of record, because a misspelt context makes the stored value unreadable."""

from __future__ import annotations


def case_context(case_id: int) -> str:
    return f"case:{case_id}"


def case_history_context(case_id: int) -> str:
    return f"case-history:{case_id}"


def label_context(case_id: int) -> str:
    return f"case-label:{case_id}"


def probabilities_context(image_id: str) -> str:
    return f"image-probabilities:{image_id}"


def embedding_context(image_id: str) -> str:
    return f"image-embedding:{image_id}"
