"""`convmem bench abstention` and `convmem bench abstention-fit`: how well the "no evidence in memory" signal
(`convmem.retrieve.abstain`) separates unanswerable questions from the rest, and the fit of its coefficients.

Positives (no evidence): LongMemEval questions whose id ends with `_abs`; LoCoMo category 5 (adversarial). The
features are computed on the memory convmem really keeps (LongMemEval: user `<question_id>`, every turn; LoCoMo:
user `<sample_id>`), exactly as `Memory.evidence` computes them.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from convmem.bench.common import data_info, provenance, read_jsonl, write_jsonl
from convmem.errors import InputError
from convmem.retrieve import abstain

BENCHMARKS = ("longmemeval", "locomo")


def _items(benchmark: str, data: str, limit: int | None) -> list[tuple[str, str, str, bool, list]]:
    """(question id, user, question, no-evidence label, sessions to import) per question. The signal does not
    depend on the question's date, so none is kept."""
    from convmem.ingest import parse_sessions

    out = []
    if benchmark == "longmemeval":
        from convmem.bench.common import dedupe
        from convmem.bench.datasets import lme_is_abstention, load_longmemeval

        for item in load_longmemeval(data, limit):
            qid = str(item["question_id"])
            sessions, _ = dedupe(parse_sessions([item], "longmemeval", source=str(data)))
            out.append((qid, qid, str(item["question"]), lme_is_abstention(item), sessions))
        return out
    from convmem.bench.locomo import item_groups
    from convmem.bench.qa import locomo_items
    from convmem.bench.datasets import load_locomo

    samples = load_locomo(data, limit)
    groups = dict(item_groups(samples, str(data)))
    for q in locomo_items(samples):
        out.append((q.qid, q.user, q.question, q.category == 5, groups[q.user]))
    return out


def collect(benchmark: str, data: str, db: str, limit: int | None = None,
            log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """One row per question: id, label, features, P(no evidence) under the shipped coefficients."""
    from convmem.api import Memory
    from convmem.bench.locomo import TENANT as LOCOMO_TENANT
    from convmem.bench.longmemeval import TENANT as LME_TENANT

    if benchmark not in BENCHMARKS:
        from convmem.errors import InputError

        raise InputError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got {benchmark!r}")
    mem = Memory(db, tenant=LME_TENANT if benchmark == "longmemeval" else LOCOMO_TENANT)
    rows = []
    imported: set[str] = set()
    items = _items(benchmark, data, limit)
    log(f"abstention: {len(items)} {benchmark} questions, {sum(i[3] for i in items)} without evidence")
    for n, (qid, user, question, label, sessions) in enumerate(items, 1):
        if user not in imported:  # idempotent: sessions already stored are only compared by hash
            mem.add_sessions(sessions)
            imported.add(user)
        ev = mem.evidence(question, user=user)
        rows.append({"question_id": qid, "user": user, "no_evidence": bool(label), "features": ev.features,
                     "p_no_evidence": round(1.0 - ev.confidence, 4), "found": ev.found})
        if n % 100 == 0:
            log(f"  {n}/{len(items)}")
    return rows


# --------------------------------------------------------------------------------------------- scoring


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (ties count half); None when one class is empty."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def evaluate(rows: Sequence[dict], p: Sequence[float] | None = None, threshold: float = abstain.THRESHOLD
             ) -> dict[str, Any]:
    """Precision / recall / F1 of "no evidence" (p >= threshold), AUC, and calibration by decile of p."""
    y = np.asarray([r["no_evidence"] for r in rows], bool)
    p = np.asarray([r["p_no_evidence"] for r in rows] if p is None else p, float)
    flagged = p >= threshold
    tp = int((flagged & y).sum())
    precision = tp / int(flagged.sum()) if flagged.any() else None
    recall = tp / int(y.sum()) if y.any() else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    bins = []
    for lo in np.arange(0.0, 1.0, 0.1):
        inside = (p >= lo) & ((p < lo + 0.1) | (lo >= 0.9))
        if inside.any():
            bins.append({"p_from": round(float(lo), 1), "n": int(inside.sum()),
                         "mean_p": float(p[inside].mean()), "share_no_evidence": float(y[inside].mean())})
    per_feature = {name: auc([-r["features"][name] for r in rows], y) for name in abstain.FEATURES}
    return {"n": len(rows), "n_no_evidence": int(y.sum()), "threshold": threshold, "flagged": int(flagged.sum()),
            "precision": precision, "recall": recall, "f1": f1, "auc": auc(p, y),
            "auc_single_feature": per_feature, "calibration": bins,
            "brier": float(np.mean((p - y) ** 2)) if len(rows) else None}


# --------------------------------------------------------------------------------------------- fitting


def fit_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, l2: float = 1e-3,
                 iterations: int = 100) -> tuple[float, np.ndarray]:
    """Weighted L2-regularised logistic regression by Newton's method: (intercept, coefficients)."""
    n, d = x.shape
    w = np.ones(n) if weights is None else weights
    X = np.hstack([np.ones((n, 1)), x])
    beta = np.zeros(d + 1)
    reg = l2 * np.eye(d + 1)
    reg[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        grad = X.T @ (w * (p - y)) + reg @ beta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + reg
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), beta[1:]


def fit_rows(rows: Sequence[dict]) -> tuple[float, dict[str, float]]:
    """(intercept, weights by feature) of the logistic model fitted on `rows` (features.jsonl rows), each
    question weighted 1."""
    x = np.asarray([[r["features"][f] for f in abstain.FEATURES] for r in rows], float)
    y = np.asarray([r["no_evidence"] for r in rows], float)
    intercept, coef = fit_logistic(x, y)
    return intercept, dict(zip(abstain.FEATURES, (float(c) for c in coef)))


def probabilities(rows: Sequence[dict], intercept: float, weights: dict[str, float]) -> list[float]:
    return [abstain.p_no_evidence(r["features"], intercept, weights) for r in rows]


def assign_folds(rows: Sequence[dict], k: int, groups: Sequence[Any] | None = None) -> np.ndarray:
    """The fold (0..k-1) of every row, stratified by label and by group (the run, i.e. the data set): within a
    group the questions of one label are ordered by a SHA-256 of their id and dealt out in turn, the count
    carrying on across groups (taken by name), so every fold gets an equal share (+-1) of the questions without
    evidence, of each data set's, and of the others. Deterministic: it depends on the ids, labels and groups only,
    not on the order of the rows or of the runs."""
    labels = [bool(r["no_evidence"]) for r in rows]
    n_pos, n_neg = sum(labels), len(rows) - sum(labels)
    if k < 2:
        raise InputError(f"folds must be 0 (no cross-validation) or at least 2, got {k}")
    if min(n_pos, n_neg) < k:
        raise InputError(f"cannot split {n_pos} questions without evidence and {n_neg} with evidence into {k} "
                         f"folds (each fold needs both kinds): use at most {min(n_pos, n_neg)} folds")
    groups = [0] * len(rows) if groups is None else list(groups)
    fold = np.empty(len(rows), int)
    for label in (True, False):
        dealt = 0
        for g in sorted(set(groups), key=str):
            members = [i for i in range(len(rows)) if groups[i] == g and labels[i] == label]
            members.sort(key=lambda i: hashlib.sha256(str(rows[i]["question_id"]).encode()).hexdigest())
            for j, i in enumerate(members):
                fold[i] = (dealt + j) % k
            dealt += len(members)
    return fold


def out_of_fold(rows: Sequence[dict], k: int, groups: Sequence[Any] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """K-fold cross-validation: (fold of each row, its P(no evidence) under the model fitted on the other k-1
    folds). Every row is predicted once, by a model that never saw it."""
    fold = assign_folds(rows, k, groups)
    p = np.full(len(rows), np.nan)
    for f in range(k):
        held_out = np.flatnonzero(fold == f)
        intercept, weights = fit_rows([r for r, g in zip(rows, fold) if g != f])
        p[held_out] = probabilities([rows[i] for i in held_out], intercept, weights)
    return fold, p


CV_THRESHOLDS = (0.5, 0.3)


def summary(rows: Sequence[dict], p: Sequence[float]) -> dict[str, Any]:
    """AUC, Brier, and flagged / precision / recall at each of CV_THRESHOLDS."""
    at = {t: evaluate(rows, p, t) for t in CV_THRESHOLDS}
    first = at[CV_THRESHOLDS[0]]
    return {"auc": first["auc"], "brier": first["brier"],
            **{f"at_{t}": {k: e[k] for k in ("flagged", "precision", "recall")} for t, e in at.items()}}


def cross_validate(runs: dict[str, list[dict]], k: int) -> dict[str, Any]:
    """In-sample (fitted on every question) and out-of-fold (`out_of_fold`, folds stratified by run and label)
    figures of the pooled fit, per run and pooled."""
    rows = [r for rs in runs.values() for r in rs]
    groups = [d for d, rs in runs.items() for _ in rs]
    fold, p_oof = out_of_fold(rows, k, groups)
    p_in = np.asarray(probabilities(rows, *fit_rows(rows)))
    by_run, start = {}, 0
    for d, rs in runs.items():
        part = slice(start, start + len(rs))
        by_run[d] = {"in_sample": summary(rs, p_in[part]), "out_of_fold": summary(rs, p_oof[part])}
        start += len(rs)
    positive = np.asarray([bool(r["no_evidence"]) for r in rows], bool)
    return {"folds": k,
            "split": "stratified by run and label; within each, ordered by SHA-256 of the question id and dealt out",
            "fold_sizes": np.bincount(fold, minlength=k).tolist(),
            "fold_no_evidence": np.bincount(fold[positive], minlength=k).tolist(),
            "by_run": by_run,
            "pooled": {"in_sample": summary(rows, p_in), "out_of_fold": summary(rows, p_oof)}}


def fit(feature_dirs: Sequence[str | Path], folds: int = 0) -> dict[str, Any]:
    """Fit on the pooled rows of several `convmem bench abstention` runs (each their features.jsonl), every
    question weighted 1, so P(no evidence) is calibrated to the pooled development questions. The threshold stays
    1/2 (say "no evidence" when it is the likelier case); precision and recall at other thresholds are reported
    per run, to show the trade-off. With `folds` (>= 2), also `cross_validate`'s out-of-fold figures next to the
    in-sample ones, which are optimistic (fitted and measured on the same questions)."""
    runs = {str(d): read_jsonl(Path(d) / "features.jsonl") for d in feature_dirs}
    rows = [r for rs in runs.values() for r in rs]
    cv = cross_validate(runs, folds) if folds else None  # first, so a bad `folds` fails before any output
    intercept, weights = fit_rows(rows)

    def p(rs):
        return probabilities(rs, intercept, weights)

    trade_off = {d: {str(t): {k: evaluate(rs, p(rs), t)[k] for k in ("flagged", "precision", "recall")}
                     for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)} for d, rs in runs.items()}
    result = {"intercept": intercept, "weights": weights, "threshold": 0.5, "n": len(rows),
              "n_no_evidence": sum(bool(r["no_evidence"]) for r in rows),
              "by_run": {d: evaluate(rs, p(rs), 0.5) for d, rs in runs.items()},
              "by_threshold": trade_off,
              "constants": (f"INTERCEPT = {intercept:.4f}\nWEIGHTS = {{"
                            + ", ".join(f'"{k}": {v:.4f}' for k, v in weights.items()) + "}")}
    if cv is not None:
        result["cross_validation"] = cv
    return result


# --------------------------------------------------------------------------------------------- the command


def run(*, benchmark: str, data: str, out: Path, db: str, limit: int | None = None,
        log: Callable[[str], None] = print, command: str | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    rows = collect(benchmark, data, db, limit, log)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "features.jsonl", rows)
    results = {"benchmark": benchmark, "command": command, "data": data_info(data, len(rows), limit), "db": db,
               "model": {"intercept": abstain.INTERCEPT, "weights": abstain.WEIGHTS,
                         "threshold": abstain.THRESHOLD, "features": list(abstain.FEATURES)},
               "signal": evaluate(rows), "seconds": time.perf_counter() - t0, "provenance": provenance()}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "report.md").write_text(report(results))
    return results


def _f(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def report(results: dict[str, Any]) -> str:
    s = results["signal"]
    lines = [f"# Abstention signal: {results['benchmark']}", "",
             f"`{results.get('command') or ''}`", "",
             f"{s['n']} questions, {s['n_no_evidence']} without evidence; flagged 'no evidence' "
             f"(P >= {s['threshold']}): {s['flagged']}.", "",
             "| precision | recall | F1 | AUC | Brier |", "|---|---|---|---|---|",
             f"| {_f(s['precision'])} | {_f(s['recall'])} | {_f(s['f1'])} | {_f(s['auc'])} | {_f(s['brier'])} |", "",
             "AUC of each feature alone (lower value = no evidence):", "",
             "| feature | AUC |", "|---|---|"]
    lines += [f"| {k} | {_f(v)} |" for k, v in s["auc_single_feature"].items()]
    lines += ["", "Calibration (questions by P(no evidence)):", "", "| P from | n | mean P | share without evidence |",
              "|---|---|---|---|"]
    lines += [f"| {b['p_from']:.1f} | {b['n']} | {b['mean_p']:.3f} | {b['share_no_evidence']:.3f} |"
              for b in s["calibration"]]
    return "\n".join(lines) + "\n"
