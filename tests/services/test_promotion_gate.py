from allcare.services.promotion_gate import GatePolicy, Verdict, decide

POLICY = GatePolicy(min_eval_images=30, min_improvement=0.01, max_ece_increase=0.0)


def metrics(balanced: float, mel: float | None, ece: float, n: int = 50) -> dict[str, object]:
    return {"n": n, "balanced_accuracy": balanced, "mel_recall": mel, "ece": ece}


def test_the_first_model_is_never_promoted_automatically() -> None:
    decision = decide(metrics(0.9, 0.9, 0.01), None, POLICY)
    assert decision.verdict == Verdict.HOLD
    assert "no production model" in decision.reasons[0]


def test_too_small_a_set_or_no_melanoma_holds_the_candidate() -> None:
    production = metrics(0.5, 0.5, 0.1)
    assert decide(metrics(0.9, 0.9, 0.0, n=29), production, POLICY).verdict == Verdict.HOLD
    held = decide(metrics(0.9, None, 0.0), production, POLICY)
    assert held.verdict == Verdict.HOLD
    assert "no melanoma" in held.reasons[0]


def test_better_and_safe_is_promoted() -> None:
    decision = decide(metrics(0.62, 0.7, 0.08), metrics(0.60, 0.7, 0.08), POLICY)
    assert decision.verdict == Verdict.PROMOTE
    assert decision.reasons == []


def test_each_broken_rule_is_a_reason_to_reject() -> None:
    production = metrics(0.60, 0.80, 0.05)
    assert (
        decide(metrics(0.605, 0.8, 0.05), production, POLICY)
        .reasons[0]
        .startswith("balanced accuracy")
    )
    mel = decide(metrics(0.70, 0.79, 0.05), production, POLICY)
    assert (mel.verdict, mel.reasons) == (
        Verdict.REJECT,
        ["melanoma recall drops from 0.800 to 0.790"],
    )
    calibration = decide(metrics(0.70, 0.9, 0.051), production, POLICY)
    assert calibration.reasons[0].startswith("calibration is worse")
    everything = decide(metrics(0.5, 0.1, 0.5), production, POLICY)
    assert len(everything.reasons) == 3
