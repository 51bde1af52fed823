"""A simulated clinic proves (or disproves) that the learning loop makes the model better.

Per arm and seed, on ham10000-dev through a real server and its HTTP API:

1. a first model from a small founding set (`allcare train --limit F`, stratified, seeded) is
   put in production;
2. rounds: a GP uploads U photos of the `train` split (not in the founding set) as new cases,
   each naming its lesion; a doctor asks for the candidates the server proposes and labels
   them with the true `dx` (the evaluation share included); automatic retraining starts at
   RETRAIN_MIN_NEW_LABELS and the promotion gate decides;
3. after each round, production is measured on the lesion-disjoint `test` split (never seen by
   training or the gate) with 95 % bootstrap intervals by lesion.

Arms: `server` (the server's policy: margin strategy, the gate), `random` (random labelling,
the gate), `always` (the server's candidates, every candidate promoted by an admin whatever the
gate says). The arms of one seed start from the same first model (trained once, its storage
copied), so they are paired. At the end, the paired interval of production's balanced-accuracy
gain over the first model on `test`, and for every promotion the paired change of test melanoma
sensitivity.

The gate judges on `--evaluation`: `clinic` (the random evaluation share of the doctor's
labelling, AL_EVALUATION_SHARE 0.2) or `val` (the admin registers the founding data set's `val`
split as the curated evaluation set, `allcare evaluation-set register`, and the evaluation share
is the smallest allowed, 0.05, so 95 % of the labels train).

    .venv/bin/python bench/clinic_simulation.py --seeds 0 1 2 --arms server random always \\
        --founding 300 --rounds 2 --uploads 1000 --labels 500 --evaluation val --out DIR

Writes a table to stdout and, with --out DIR, results.json and a PNG plot (matplotlib);
`--report A/results.json B/results.json --out DIR` merges earlier runs into one table and plot.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import HAM, add_account, free_port

from allcare.ml.classes import CLASS_NAMES
from allcare.ml.loading import ModelOptions, load_model, predict
from allcare.ml.paired_bootstrap import compare, metric_interval
from allcare.ml.photo import model_input_of

PASSWORD = "simulated-clinic-password"  # noqa: S105 - a throwaway server's account
CLINIC_EVALUATION_SHARE = 0.2
CURATED_EVALUATION_SHARE = 0.05


@dataclass
class Arm:
    name: str
    seed: int
    points: list[dict[str, Any]] = field(default_factory=list)
    promotions: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    final_gain: dict[str, Any] | None = None
    minutes: float = 0.0


def rows(split: str) -> list[dict[str, str]]:
    with (HAM / "labels.csv").open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["split"] == split]


class TestSplit:
    """The `test` split decoded once; each model scored on it keeps its probabilities."""

    def __init__(self, limit: int | None) -> None:
        chosen = rows("test")
        if limit:
            chosen = random.Random(0).sample(chosen, limit)
        self.labels = np.array([CLASS_NAMES.index(r["dx"]) for r in chosen])
        self.groups = np.array([r["lesion_id"] for r in chosen])
        self.inputs = [
            model_input_of((HAM / "images" / f"{r['image_id']}.jpg").read_bytes()) for r in chosen
        ]
        self.scored: dict[str, np.ndarray] = {}

    def score(self, path: Path) -> np.ndarray:
        key = str(path)
        if key not in self.scored:
            model = load_model(path, ModelOptions("onnx", "cpu", 2, path.parent))
            self.scored[key] = predict(model, self.inputs, batch_size=32)
        return self.scored[key]


def environment(storage: Path, args: argparse.Namespace, port: int) -> dict[str, str]:
    # With a curated set the clinic's held-out cases judge nothing: the smallest share allowed.
    share = CLINIC_EVALUATION_SHARE if args.evaluation == "clinic" else CURATED_EVALUATION_SHARE
    return os.environ | {
        "STORAGE_ROOT": str(storage),
        "ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "JWT_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "BACKSERVER_HOST": "127.0.0.1",
        "BACKSERVER_PORT": str(port),
        "RETRAIN_AUTO": "true",
        # A round's evaluation share goes to held-out cases: the rest starts the next run.
        "RETRAIN_MIN_NEW_LABELS": str(args.labels - round(args.labels * share)),
        "AL_EVALUATION_SHARE": str(share),
        "EVAL_HOLDOUT_SHARE": str(share),
        "RETRAIN_MIN_STEPS": str(args.min_steps),
        "PROMOTION_MIN_EVAL_CASES": str(args.min_eval_cases),
        # Nothing is served while the simulated doctor waits for a run: both cores train.
        "TRAINING_THREADS": str(os.cpu_count() or 1),
        "UPLOAD_RATE_PER_MINUTE": "100000",
        "LOG_LEVEL": "warning",
    }


def founding_storage(args: argparse.Namespace, seed: int) -> tuple[Path, dict[str, str]]:
    """Accounts and the first model of one seed, in a storage folder every arm copies."""
    storage = Path(tempfile.mkdtemp(prefix=f"clinic-founding-{seed}-"))
    env = environment(storage, args, free_port())
    for user, role in (("gp1", "gp"), ("doc1", "doctor"), ("admin1", "admin")):
        add_account(env, user, PASSWORD, role)
    first_model(env, args, seed)
    if args.evaluation == "val":
        register = [sys.executable, "-m", "allcare", "evaluation-set", "register", str(HAM)]
        subprocess.run([*register, "--split", "val"], env=env, check=True, capture_output=True)
    return storage, env


def first_model(env: dict[str, str], args: argparse.Namespace, seed: int) -> None:
    command = [sys.executable, "-m", "allcare", "train", str(HAM), "--limit", str(args.founding)]
    command += ["--seed", str(seed), "--epochs", str(args.first_epochs), "--promote"]
    # A founding set this small is below the promotion floor: the simulation says so and starts.
    command += ["--force", "--reason", "clinic simulation: a small founding set"]
    subprocess.run(command, env=env, check=True, capture_output=True)


def token(client: httpx.Client, user: str) -> dict[str, str]:
    answer = client.post("/auth/login", json={"username": user, "password": PASSWORD})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def upload_case(client: httpx.Client, gp: dict[str, str], row: dict[str, str]) -> str:
    case_id = client.post("/cases/next-id", headers=gp).json()["case_id"]
    photo = (HAM / "images" / f"{row['image_id']}.jpg").read_bytes()
    checked = client.post(
        "/check-image",
        params={"case_id": case_id},
        files={"file": ("photo.jpg", photo, "image/jpeg")},
        headers=gp,
    ).json()
    record = {
        "case_id": case_id,
        "status": "Confirmed",
        "image_paths": [f"{checked['user_id']}/{checked['image_id']}.jpg"],
        "predictions": checked.get("predictions", [])[:3],
        "lesion_id": row["lesion_id"],
    }
    client.post("/cases", json=record, headers=gp).raise_for_status()
    return case_id


def runs(client: httpx.Client, admin: dict[str, str]) -> int:
    return len(client.get("/admin/models", headers=admin).json()["models"])


def wait_for_round(
    client: httpx.Client, admin: dict[str, str], before: int, expect_run: bool
) -> None:
    """Until the run the round's labels started (automatic retraining) has been judged."""
    deadline = time.monotonic() + 3600
    while expect_run and runs(client, admin) <= before and time.monotonic() < deadline - 3570:
        time.sleep(0.5)
    while (
        client.get("/admin/retrain/status", headers=admin).json()["retrain_status"]["status"]
        == "training"
    ):
        if time.monotonic() > deadline:
            raise SystemExit("a training run did not finish in time")
        time.sleep(2.0)


def production_path(client: httpx.Client, admin: dict[str, str]) -> tuple[str, Path]:
    model = client.get("/admin/models/production", headers=admin).json()["production_model"]
    return model["version_id"], Path(model["path"])


def measure(test: TestSplit, path: Path, seed: int) -> dict[str, Any]:
    intervals = metric_interval(test.labels, test.score(path), test.groups, seed=seed)
    return {name: value.as_dict() for name, value in intervals.items()}


def simulate(
    name: str,
    seed: int,
    args: argparse.Namespace,
    test: TestSplit,
    founding: tuple[Path, dict[str, str]],
) -> Arm:
    arm = Arm(name, seed)
    started = time.monotonic()
    storage = Path(tempfile.mkdtemp(prefix=f"clinic-{name}-{seed}-")) / "storage"
    shutil.copytree(founding[0], storage)
    port = free_port()
    env = founding[1] | {"STORAGE_ROOT": str(storage), "BACKSERVER_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "allcare", "serve"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        for _ in range(120):
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        gp, doctor, admin = (token(client, u) for u in ("gp1", "doc1", "admin1"))
        config = {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "melanoma_weight": args.melanoma_weight,
        }
        client.post("/admin/training-config", json=config, headers=admin).raise_for_status()
        first_id, first = production_path(client, admin)
        arm.points.append({"labels": 0, "version": first_id} | measure(test, first, seed))
        seen = founding_ids(args.founding, seed)
        pool = [row for row in rows("train") if row["image_id"] not in seen]
        random.Random(seed).shuffle(pool)
        truth: dict[str, str] = {}
        labelled = 0
        for round_index in range(args.rounds):
            for row in pool[round_index * args.uploads : (round_index + 1) * args.uploads]:
                truth[upload_case(client, gp, row)] = row["dx"]
            before = runs(client, admin)
            strategy = "random" if name == "random" else "margin"
            picked = client.post(
                "/active-learning/candidates",
                json={"top_k": args.labels, "strategy": strategy},
                headers=doctor,
            ).json()["candidates"]
            for candidate in picked:
                label = {"correct_label": truth[candidate["case_id"]]}
                answer = client.post(
                    f"/cases/{candidate['case_id']}/label", json=label, headers=doctor
                )
                if answer.status_code != 200:
                    raise SystemExit(f"labelling failed: {answer.status_code} {answer.text}")
                labelled += 1
            wait_for_round(client, admin, before, expect_run=len(picked) >= args.labels)
            newest = _newest_run(client, admin, before)
            if newest is not None:
                arm.candidates.append(_candidate_record(newest, test, first, seed, labelled))
            if name == "always":
                _promote_newest(client, admin)
            version, path = production_path(client, admin)
            point = {"labels": labelled, "version": version} | measure(test, path, seed)
            arm.points.append(point)
            previous = arm.points[-2]
            if version != previous["version"]:
                before = test.scored[str(_path_of(client, admin, previous["version"]))]
                change = compare(test.labels, test.score(path), before, test.groups, seed=seed)
                arm.promotions.append(
                    {"version": version, "labels": labelled}
                    | {"mel_recall_change": change.mel_recall_change.as_dict()}
                )
            print(f"  {name} seed {seed} round {round_index + 1}: {point}", flush=True)
        final = arm.points[-1]["version"]
        gain = compare(
            test.labels,
            test.score(_path_of(client, admin, final)),
            test.score(first),
            test.groups,
            seed=seed,
        )
        arm.final_gain = gain.balanced_accuracy_gain.as_dict()
    finally:
        server.terminate()
        server.wait(timeout=60)
    arm.minutes = (time.monotonic() - started) / 60
    return arm


def founding_ids(size: int, seed: int) -> set[str]:
    """The photos the first model was trained on: `allcare train --limit`'s stratified draw."""
    from allcare.services.learning.first_model import read_folder

    train, _ = read_folder(HAM, "val", limit=size, seed=seed)
    return {sample.path.stem for sample in train}


def _path_of(client: httpx.Client, admin: dict[str, str], version: str) -> Path:
    models = client.get("/admin/models", headers=admin).json()["models"]
    return Path(next(m["path"] for m in models if m["version_id"] == version))


def _newest_run(client: httpx.Client, admin: dict[str, str], before: int) -> dict[str, Any] | None:
    models = client.get("/admin/models", headers=admin).json()["models"]
    if len(models) <= before:
        return None
    return dict(max(models, key=lambda m: m["version_id"]))


def _candidate_record(
    model: dict[str, Any], test: TestSplit, first: Path, seed: int, labels: int
) -> dict[str, Any]:
    """What the gate saw (on the evaluation set, against the production of the time) beside
    what test shows against the first model: the table that says whether the gate was right."""
    evaluation = model.get("evaluation") or {}
    record = {
        "version": model["version_id"],
        "labels": labels,
        "verdict": evaluation.get("verdict"),
        "reasons": evaluation.get("reasons"),
        "gate": evaluation.get("comparison"),
        "training_seconds": (model.get("metrics") or {}).get("training_seconds"),
        "calibration": (model.get("metrics") or {}).get("calibration"),
    }
    if model.get("path"):
        change = compare(
            test.labels, test.score(Path(model["path"])), test.score(first), test.groups, seed=seed
        )
        record["test_vs_first"] = {
            "balanced_accuracy_gain": change.balanced_accuracy_gain.as_dict(),
            "mel_recall_change": change.mel_recall_change.as_dict(),
        }
    return record


def _promote_newest(client: httpx.Client, admin: dict[str, str]) -> None:
    models = client.get("/admin/models", headers=admin).json()["models"]
    judged = [m for m in models if m["status"] in ("evaluating", "rejected") and m["path"]]
    if judged:
        newest = max(judged, key=lambda m: m["version_id"])
        body = {"reason": "always-promote arm of the clinic simulation"}
        client.post(f"/admin/models/{newest['version_id']}/promote", json=body, headers=admin)


def _interval_text(interval: dict[str, Any] | None) -> str:
    if not interval or interval.get("estimate") is None:
        return "-"
    return f"{interval['estimate']:+.3f} ({interval['low']:+.3f} to {interval['high']:+.3f})"


def report(arms: list[Arm], out: Path | None) -> None:
    print(
        "| arm | seed | labels | production | balanced accuracy (95% CI) "
        "| melanoma sensitivity (95% CI) |"
    )
    print("|---|---|---|---|---|---|")
    for arm in arms:
        for point in arm.points:
            ba, mel = point["balanced_accuracy"], point["mel_recall"]
            print(
                f"| {arm.name} | {arm.seed} | {point['labels']} | {point['version']} | "
                f"{ba['estimate']:.3f} ({ba['low']:.3f}-{ba['high']:.3f}) | "
                f"{mel['estimate']:.3f} ({mel['low']:.3f}-{mel['high']:.3f}) |"
            )
    for arm in arms:
        gain = arm.final_gain or {}
        worse = [p for p in arm.promotions if (p["mel_recall_change"]["high"] or 0) < 0]
        print(
            f"{arm.name} seed {arm.seed}: final gain over the first model "
            f"{gain.get('estimate', 0):+.3f} ({gain.get('low', 0):+.3f} to "
            f"{gain.get('high', 0):+.3f}); {len(arm.promotions)} promotions, {len(worse)} "
            f"lowered melanoma sensitivity beyond their interval; {arm.minutes:.1f} min"
        )
    print(
        "| arm | seed | version | verdict | gate gain (95% CI) | gate mel. change | test gain "
        "over the first model | test mel. change | training s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for arm in arms:
        for run in arm.candidates:
            gate, test = run.get("gate") or {}, run.get("test_vs_first") or {}
            print(
                f"| {arm.name} | {arm.seed} | {run['version'][-3:]} | {run['verdict']} | "
                f"{_interval_text(gate.get('balanced_accuracy_gain'))} | "
                f"{_interval_text(gate.get('mel_recall_change'))} | "
                f"{_interval_text(test.get('balanced_accuracy_gain'))} | "
                f"{_interval_text(test.get('mel_recall_change'))} | {run['training_seconds']} |"
            )
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([arm.__dict__ for arm in arms], indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = list(dict.fromkeys(arm.name for arm in arms))
    seeds = sorted({arm.seed for arm in arms})
    for arm in arms:
        labels = [p["labels"] for p in arm.points]
        for axis, metric in zip(axes, ("balanced_accuracy", "mel_recall"), strict=True):
            axis.plot(
                labels,
                [p[metric]["estimate"] for p in arm.points],
                color=f"C{names.index(arm.name)}",
                marker="osD^v"[seeds.index(arm.seed) % 5],
                alpha=0.8,
                label=f"{arm.name} (seed {arm.seed})",
            )
    for axis, title in zip(
        axes, ("balanced accuracy on test", "melanoma sensitivity on test"), strict=True
    ):
        axis.set_xlabel("expert labels")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "clinic_simulation.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=["server", "random", "always"])
    parser.add_argument(
        "--random-seeds", type=int, nargs="*", help="seeds of the random arm (default: --seeds)"
    )
    parser.add_argument("--founding", type=int, default=300)
    parser.add_argument("--first-epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument(
        "--melanoma-weight", type=float, default=2.0, help="retraining's (RETRAIN_MELANOMA_WEIGHT)"
    )
    parser.add_argument("--min-steps", type=int, default=50)
    parser.add_argument("--min-eval-cases", type=int, default=100)
    parser.add_argument("--evaluation", choices=["clinic", "val"], default="val")
    parser.add_argument("--test-limit", type=int, default=0, help="0: the whole test split")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        help="only report: the tables and plot of these results.json files (runs merged)",
    )
    args = parser.parse_args()
    if args.report:
        report([Arm(**arm) for f in args.report for arm in json.loads(f.read_text())], args.out)
        return
    if not HAM.exists():
        raise SystemExit(f"{HAM} not found: this benchmark needs ham10000-dev")
    test = TestSplit(args.test_limit or None)
    arms = []
    for seed in args.seeds:
        founding = founding_storage(args, seed)
        for name in args.arms:
            if name == "random" and args.random_seeds is not None and seed not in args.random_seeds:
                continue
            arms.append(simulate(name, seed, args, test, founding))
    report(arms, args.out)


if __name__ == "__main__":
    main()
