from allcare.store.contexts import (
    case_context,
    case_history_context,
    embedding_context,
    label_context,
    probabilities_context,
)


def test_the_contexts_keep_the_spellings_that_sealed_the_stored_data() -> None:
    """Values already on disk were sealed with these exact strings: any change locks them out."""
    assert case_context(7) == "case:7"
    assert case_history_context(7) == "case-history:7"
    assert label_context(7) == "case-label:7"
    assert probabilities_context("a1") == "image-probabilities:a1"
    assert embedding_context("a1") == "image-embedding:a1"
